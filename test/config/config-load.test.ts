// Config loading (SPEC.md "Configuration", issue 2 item 3): YAML → env overlay → schema →
// pattern checks. Every error names its field path and entry; all of them are listed at once.
import { join } from 'node:path'
import t from 'tap'
import { BROWSER_MAX_AGE_CAP, ConfigError, DEFAULT_CONFIG_PATH, formatPath, loadConfig, parseConfig } from '../../src/config/load.js'
import { configSchema } from '../../src/config/schema.js'

const BASE = `
policies:
  default:
    origins: ["https://app.example.com"]
routes:
  - { path: /, upstream: "http://127.0.0.1:8000" }
`

type Fails = Pick<typeof t, 'fail'>

/** The problems a document is rejected with (fails the test if it is accepted). */
function problems (t: Fails, text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, 'test.yaml', env)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  t.fail('expected the config to be rejected')
  return []
}

t.test('a minimal config gets every default', async (t) => {
  const { config, warnings, envOrigins, file } = parseConfig(BASE, 'test.yaml')
  t.equal(file, 'test.yaml')
  t.same(warnings, [])
  t.same(envOrigins, [])
  t.match(config.server, { host: '0.0.0.0', port: 8080, trustProxy: false })
  t.same(config.admin, { host: '127.0.0.1', port: 9090 })
  t.same(config.log, { level: 'info' })
  t.equal(config.redis, undefined, 'no redis section → file policies only')
  t.match(config.policies.default, {
    origins: ['https://app.example.com'],
    deny: [],
    noOrigin: 'allow',
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowHeaders: ['Content-Type', 'Authorization', 'X-Requested-With', 'X-CSRF-TOKEN', 'X-XSRF-TOKEN'],
    exposeHeaders: [],
    credentials: true,
    privateNetwork: false,
    mode: 'enforce',
    preflightStatus: 204,
    stripUpstreamCors: true
  })
  t.equal(config.policies.default?.maxAge, undefined)
  t.match(config.routes[0], { path: '/', upstream: 'http://127.0.0.1:8000', websocket: false, policy: 'default' })
})

t.test('the SPEC.md example config loads', async (t) => {
  const spec = `
server: { host: 0.0.0.0, port: 8080, trustProxy: false }
admin:  { host: 127.0.0.1, port: 9090 }
log:    { level: info }
redis:
  url: redis://127.0.0.1:6379/0
  keyPrefix: "corsgate:"
  pollIntervalMs: 5000
  required: false
policies:
  default:
    origins: ["https://app.example.com", "https://*.example.com"]
    deny: []
    noOrigin: allow
    methods: [GET, HEAD, POST, PUT, PATCH, DELETE]
    allowHeaders: [Content-Type, Authorization, X-Requested-With, X-CSRF-TOKEN, X-XSRF-TOKEN]
    exposeHeaders: []
    credentials: true
    maxAge: 600
    privateNetwork: false
    mode: enforce
    preflightStatus: 204
routes:
  - { path: /socket.io/, upstream: "http://127.0.0.1:6001", websocket: true, policy: default }
  - { path: /,           upstream: "http://127.0.0.1:8000", policy: default }
`
  const { config, warnings } = parseConfig(spec, 'spec.yaml')
  t.same(warnings, [])
  t.equal(config.routes.length, 2)
  t.equal(config.redis?.url, 'redis://127.0.0.1:6379/0')
})

t.test('the shipped config/default.yaml is valid and needs no Redis', async (t) => {
  const { config } = loadConfig(DEFAULT_CONFIG_PATH, {})
  t.equal(config.server.port, 8080)
  t.equal(config.redis?.url, undefined)
  t.ok(config.routes.some((r) => r.path === '/' && r.upstream?.startsWith('http://127.0.0.1:8000') === true))
})

t.test('unknown keys are errors naming their path', async (t) => {
  t.same(problems(t, `${BASE}bogus: 1\n`), ['(top level): unknown key "bogus"'])
  t.same(problems(t, BASE.replace('origins:', 'orgins: []\n    origins:')), ['policies.default: unknown key "orgins"'])
  t.same(problems(t, BASE.replace('upstream: "http://127.0.0.1:8000"', 'upstream: "http://127.0.0.1:8000", websockets: true')), ['routes[0]: unknown key "websockets"'])
  t.same(problems(t, `server: { prot: 1, hots: x }\n${BASE}`), ['server: unknown keys "prot", "hots"'])
  t.same(problems(t, `redis: { url: "redis://r", pollInterval: 5 }\n${BASE}`), ['redis: unknown key "pollInterval"'])
})

t.test('every origin error names its field path, index and entry', async (t) => {
  const p = problems(t, `
policies:
  default:
    origins: ["https://ok.example.com", "https://app.example.com/x", "https://*.com", "https://*.co.uk", "https://*.github.io"]
    deny: ["https://u@evil.com", "https://*.evil.*"]
  other:
    origins: ["https://app.example.com#frag", "re:^(https://a", "https://app.example.com?q", "https://*example.com"]
routes:
  - { path: /, upstream: "http://127.0.0.1:8000" }
`)
  const expected: Array<[string, string, RegExp]> = [
    ['policies.default.origins[1]', 'https://app.example.com/x', /no path/],
    ['policies.default.origins[2]', 'https://*.com', /public suffix/],
    ['policies.default.origins[3]', 'https://*.co.uk', /public suffix/],
    ['policies.default.origins[4]', 'https://*.github.io', /public suffix/],
    ['policies.default.deny[0]', 'https://u@evil.com', /userinfo/],
    ['policies.default.deny[1]', 'https://*.evil.*', /"\*" is only allowed/],
    ['policies.other.origins[0]', 'https://app.example.com#frag', /fragment/],
    ['policies.other.origins[1]', 're:^(https://a', /invalid regular expression/],
    ['policies.other.origins[2]', 'https://app.example.com?q', /query/],
    ['policies.other.origins[3]', 'https://*example.com', /"\*" is only allowed/]
  ]
  t.equal(p.length, expected.length, `one problem per bad entry:\n${p.join('\n')}`)
  for (const [where, value, reason] of expected) {
    const line = p.find((l) => l.startsWith(`${where}: `))
    t.ok(line, `${where} is named`)
    t.ok(line?.includes(JSON.stringify(value)), `${where} quotes ${value}`)
    t.match(line, reason)
  }
})

t.test('"*" with credentials: true is rejected', async (t) => {
  const p = problems(t, BASE.replace('origins: ["https://app.example.com"]', 'origins: ["https://app.example.com", "*"]'))
  t.equal(p.length, 1)
  t.match(p[0], /^policies\.default\.origins/)
  t.match(p[0], /"\*" cannot be used with credentials: true/)
  t.same(problems(t, BASE.replace('origins: ["https://app.example.com"]', 'origins: ["*"]\n    credentials: true')).length, 1, 'credentials: true written out')
  const ok = parseConfig(BASE.replace('origins: ["https://app.example.com"]', 'origins: ["*"]\n    credentials: false'), 'test.yaml')
  t.same(ok.config.policies.default?.origins, ['*'], 'fine without credentials')
  t.same(parseConfig(BASE.replace('origins: ["https://app.example.com"]', 'origins: []\n    deny: ["*"]'), 'test.yaml').config.policies.default?.deny, ['*'], '"*" in deny is fine')
})

t.test('"*" with credentials names the entry\'s index like every other origin error', async (t) => {
  const p = problems(t, BASE.replace('origins: ["https://app.example.com"]', 'origins: ["https://app.example.com", "*"]'))
  t.match(p[0], /^policies\.default\.origins\[1\]: /, p[0] ?? '')
})

t.test('schema errors name their field', async (t) => {
  const p = problems(t, `
server: { port: 99999, trustProxy: "yes" }
admin: { port: "x" }
log: { level: loud }
redis: { url: "http://r:6379", pollIntervalMs: 10 }
policies:
  default:
    methods: [get]
    allowHeaders: ["Bad Header"]
    maxAge: -1
    mode: strict
    noOrigin: maybe
    preflightStatus: 201
    credentials: "true"
routes:
  - { path: api, upstream: "ftp://x", policy: nope }
`)
  const fields = ['server.port', 'server.trustProxy', 'admin.port', 'log.level', 'redis.url', 'redis.pollIntervalMs',
    'policies.default.methods[0]', 'policies.default.allowHeaders', 'policies.default.maxAge', 'policies.default.mode',
    'policies.default.noOrigin', 'policies.default.preflightStatus', 'policies.default.credentials', 'routes[0].path', 'routes[0].upstream']
  for (const f of fields) t.ok(p.some((l) => l.startsWith(`${f}: `) || l.startsWith(`${f}[`)), `${f} is named`)
  t.ok(p.length >= fields.length, 'several errors listed at once')
  t.ok(p.find((l) => l.startsWith('routes[0].path'))?.includes('must start with "/"'))
  t.ok(p.find((l) => l.startsWith('routes[0].upstream'))?.includes('http:// or https://'))
})

t.test('an upstream URL with a path or query is refused: requests keep their own path', async (t) => {
  for (const upstream of ['http://127.0.0.1:8000/api', 'http://127.0.0.1:8000/?v=1', 'http://127.0.0.1:8000#x']) {
    const p = problems(t, BASE.replace('"http://127.0.0.1:8000"', JSON.stringify(upstream)))
    t.match(p, [/^routes\[0\]\.upstream: must be scheme:\/\/host\[:port\] only/], upstream)
  }
  for (const upstream of ['http://127.0.0.1:8000/', 'https://laravel.web.svc.cluster.local']) {
    t.doesNotThrow(() => parseConfig(BASE.replace('"http://127.0.0.1:8000"', JSON.stringify(upstream)), 'test.yaml', {}), upstream)
  }
})

t.test('a route naming an unknown policy, a duplicate route', async (t) => {
  t.same(problems(t, BASE.replace('upstream: "http://127.0.0.1:8000"', 'upstream: "http://127.0.0.1:8000", policy: nope')),
    ['routes[0].policy: names policy "nope", which is not defined under policies'])
  t.same(problems(t, `${BASE}  - { path: /, upstream: "http://127.0.0.1:8001" }\n`), ['routes[1].path: duplicates an earlier route for any host /'])
  t.doesNotThrow(() => parseConfig(`${BASE}  - { path: /, host: api.example.com, upstream: "http://127.0.0.1:8001" }\n`, 'test.yaml'), 'same path on another host is fine')
})

t.test('a duplicate route whose host differs only in case is caught', async (t) => {
  // Hosts are case-insensitive and the route table lower-cases them, so the second route is dead.
  const doc = `${BASE}  - { path: /, host: API.example.com, upstream: "http://127.0.0.1:8001" }\n  - { path: /, host: api.example.com, upstream: "http://127.0.0.1:8002" }\n`
  let p: string[] = []
  try {
    parseConfig(doc, 'test.yaml')
  } catch (err) {
    if (err instanceof ConfigError) p = err.problems
  }
  t.ok(p.some((l) => l.startsWith('routes[2].path: duplicates')), `routes[2] reported as a duplicate (got: ${p.join('; ') || 'accepted'})`)
})

t.test('missing sections', async (t) => {
  const p = problems(t, '')
  t.ok(p.some((l) => l.startsWith('policies: ')), 'policies named')
  t.ok(p.some((l) => l.startsWith('routes: ')), 'routes named')
  t.match(problems(t, 'policies: {}\nroutes: []\n'), ['policies: at least one policy is required', 'routes: at least one route is required'])
  t.match(problems(t, '- a\n'), [/^\(top level\): /])
})

t.test('a policy name with a space is named and explained', async (t) => {
  const p = problems(t, BASE.replace('default:', '"bad name":').replace('upstream: "http://127.0.0.1:8000"', 'upstream: "http://127.0.0.1:8000", policy: "bad name"'))
  t.ok(p.some((l) => l.startsWith('policies.bad name')), 'the key is named')
  t.ok(p.some((l) => l.includes('bad name') && l.includes('policy names use letters, digits')), p.join('\n'))
})

t.test('YAML errors and duplicate keys', async (t) => {
  t.match(problems(t, 'policies: [\n'), [/^YAML: /])
  t.match(problems(t, `${BASE}policies: {}\n`), [/^YAML: Map keys must be unique/])
})

t.test('several errors listed at once, schema and patterns together', async (t) => {
  const p = problems(t, BASE.replace('origins: ["https://app.example.com"]', 'origins: ["https://app.example.com/x"]\n    mode: strict\n    colour: red'))
  t.ok(p.some((l) => l.startsWith('policies.default.mode: ')), 'mode')
  t.ok(p.some((l) => l === 'policies.default: unknown key "colour"'), 'unknown key')
  t.ok(p.some((l) => l.startsWith('policies.default.origins[0]: ')), 'bad origin')
})

t.test('maxAge above what Chromium honours is accepted with a warning that says so', async (t) => {
  t.equal(BROWSER_MAX_AGE_CAP, 7200)
  const high = parseConfig(BASE.replace('origins:', 'maxAge: 86400\n    origins:'), 'test.yaml')
  t.equal(high.config.policies.default?.maxAge, 86400, 'accepted as written')
  t.equal(high.warnings.length, 1)
  t.match(high.warnings[0], /^policies\.default\.maxAge: /)
  t.match(high.warnings[0], /Chromium/)
  t.match(high.warnings[0], /7200/)
  t.same(parseConfig(BASE.replace('origins:', 'maxAge: 7200\n    origins:'), 'test.yaml').warnings, [], 'exactly the cap: no warning')
})

t.test('environment overrides', async (t) => {
  const redisBase = `redis: { url: "redis://file:6379/0" }\n${BASE}`
  const { config, envOrigins } = parseConfig(redisBase, 'test.yaml', {
    CORSGATE_HOST: '127.0.0.2',
    CORSGATE_PORT: '8081',
    CORSGATE_ADMIN_PORT: '9091',
    CORSGATE_LOG_LEVEL: 'debug',
    CORSGATE_REDIS_URL: 'rediss://user:secret@env:6380/1',
    CORSGATE_UPSTREAM: 'http://10.0.0.1:9000',
    CORSGATE_ORIGINS: ' https://ok.example.org , http://localhost:*,, '
  })
  t.equal(config.server.host, '127.0.0.2')
  t.equal(config.server.port, 8081)
  t.equal(config.admin.port, 9091)
  t.equal(config.log.level, 'debug')
  t.equal(config.redis?.url, 'rediss://user:secret@env:6380/1')
  t.equal(config.routes[0]?.upstream, 'http://10.0.0.1:9000')
  t.same(envOrigins, ['https://ok.example.org', 'http://localhost:*'], 'trimmed, empty items dropped')
  t.same(config.policies.default?.origins, ['https://app.example.com'], 'the file list is untouched; env origins are kept apart for their source')

  const noFileSections = parseConfig(BASE, 'test.yaml', { CORSGATE_PORT: '0', CORSGATE_ADMIN_PORT: '65535', CORSGATE_REDIS_URL: 'redis://r:6379' })
  t.equal(noFileSections.config.server.port, 0, 'port 0 (any free port) is a port')
  t.equal(noFileSections.config.admin.port, 65535)
  t.equal(noFileSections.config.redis?.url, 'redis://r:6379', 'a redis section is created')

  const empty = parseConfig(BASE, 'test.yaml', { CORSGATE_PORT: '', CORSGATE_ORIGINS: '' })
  t.equal(empty.config.server.port, 8080, 'an empty variable is unset')
  t.same(empty.envOrigins, [])
})

t.test('CORSGATE_UPSTREAM points the catch-all route only', async (t) => {
  const two = `${BASE}  - { path: /api, upstream: "http://127.0.0.1:7000" }\n  - { path: /, host: a.example.com, upstream: "http://127.0.0.1:7001" }\n`
  const { config } = parseConfig(two, 'test.yaml', { CORSGATE_UPSTREAM: 'http://up:1' })
  t.same(config.routes.map((r) => r.upstream), ['http://up:1', 'http://127.0.0.1:7000', 'http://127.0.0.1:7001'])
  t.same(problems(t, BASE.replace('path: /', 'path: /api'), { CORSGATE_UPSTREAM: 'http://up:1' }),
    ['CORSGATE_UPSTREAM: the config has no catch-all route (path "/" without host) to point at it'])
})

t.test('an invalid env port is named', async (t) => {
  for (const value of ['abc', '70000', '65536', '-1', '80.0', ' 8080', '0x50', '123456']) {
    t.same(problems(t, BASE, { CORSGATE_PORT: value }), [`CORSGATE_PORT: "${value}" is not a port number`], `CORSGATE_PORT=${value}`)
    t.same(problems(t, BASE, { CORSGATE_ADMIN_PORT: value }), [`CORSGATE_ADMIN_PORT: "${value}" is not a port number`], `CORSGATE_ADMIN_PORT=${value}`)
  }
  const both = problems(t, `server: { port: 99999 }\n${BASE}`, { CORSGATE_ADMIN_PORT: 'x' })
  t.ok(both.includes('CORSGATE_ADMIN_PORT: "x" is not a port number') && both.some((l) => l.startsWith('server.port: ')), 'listed with schema errors')
})

t.test('CORSGATE_ORIGINS entries are checked and named', async (t) => {
  t.same(problems(t, BASE, { CORSGATE_ORIGINS: 'https://ok.example.org,https://bad.example.org/x' }).map((l) => l.replace(/: .*/s, '')), ['CORSGATE_ORIGINS[1]'])
  t.match(problems(t, BASE, { CORSGATE_ORIGINS: '*' }), [/"\*" cannot be used with credentials: true/], '"*" from the env is refused under credentials too')
  const other = BASE.replace('default:', 'other:').replace('upstream: "http://127.0.0.1:8000"', 'upstream: "http://127.0.0.1:8000", policy: other')
  t.same(problems(t, other, { CORSGATE_ORIGINS: 'https://x.org' }), ['CORSGATE_ORIGINS: there is no policy named "default" to add the origins to'])
})

t.test('env values that fail the schema are named by the variable that set them', async (t) => {
  const p = problems(t, BASE, { CORSGATE_LOG_LEVEL: 'loud', CORSGATE_REDIS_URL: 'http://r', CORSGATE_UPSTREAM: 'nope' })
  t.equal(p.length, 3, 'all three are listed')
  for (const name of ['CORSGATE_LOG_LEVEL', 'CORSGATE_REDIS_URL', 'CORSGATE_UPSTREAM']) t.ok(p.some((l) => l.includes(name)), `${name} named in:\n${p.join('\n')}`)
})

t.test('a bad CORSGATE_ORIGINS entry is listed even when the schema fails', async (t) => {
  const p = problems(t, `server: { port: 99999 }\n${BASE}`, { CORSGATE_ORIGINS: 'https://bad.example.org/x' })
  t.ok(p.some((l) => l.startsWith('server.port: ')), 'schema error')
  t.ok(p.some((l) => l.startsWith('CORSGATE_ORIGINS[0]: ')), `env origin error in:\n${p.join('\n')}`)
})

t.test('loadConfig reads a file; the error names the file and exits the same way', async (t) => {
  const dir = t.testdir({
    'good.yaml': BASE,
    'bad.yaml': `${BASE}bogus: 1\n`
  })
  const good = loadConfig(join(dir, 'good.yaml'), { CORSGATE_PORT: '1234' })
  t.equal(good.file, join(dir, 'good.yaml'))
  t.equal(good.config.server.port, 1234, 'the env argument is applied')

  const bad = t.throws(() => loadConfig(join(dir, 'bad.yaml'), {})) as unknown as ConfigError
  t.equal(bad.code, 'CORSGATE_CONFIG_INVALID')
  t.equal(bad.file, join(dir, 'bad.yaml'))
  t.match(bad.message, new RegExp(`^invalid configuration ${join(dir, 'bad.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\n  - \\(top level\\): unknown key "bogus"$`))

  const missing = t.throws(() => loadConfig(join(dir, 'nope.yaml'), {})) as unknown as ConfigError
  t.ok(missing instanceof ConfigError)
  t.match(missing.problems, [/^cannot read the file: /])
})

t.test('formatPath', async (t) => {
  t.equal(formatPath([]), '')
  t.equal(formatPath(['policies', 'default', 'origins', 2]), 'policies.default.origins[2]')
  t.equal(formatPath(['routes', 0, 'upstream']), 'routes[0].upstream')
})

t.test('schema types: routes and redis defaults', async (t) => {
  const c = configSchema.parse({ policies: { default: {} }, routes: [{ path: '/', upstream: 'https://u.example.com' }], redis: {} })
  t.match(c.redis, { keyPrefix: 'corsgate:', pollIntervalMs: 5000, required: false })
  t.match(c.routes[0], { websocket: false, policy: 'default', timeoutMs: 30_000 })
  t.equal(configSchema.safeParse({ policies: { default: {} }, routes: [{ path: '/', upstream: 'ws://u' }] }).success, false, 'upstream must be http(s)')
})
