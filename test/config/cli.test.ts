// `corsgate validate` and `corsgate check` as a user runs them: a real process, real files,
// exit codes 0 allowed/valid, 1 denied, 2 bad input or invalid config.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

// Every run compiles the CLI's import graph through tsx: seconds each on a loaded machine.
t.setTimeout(300_000)

interface Run { code: number | null, stdout: string, stderr: string }

// Each run compiles the CLI through tsx; two at a time keeps a busy machine from thrashing.
let running = 0
const waiting: Array<() => void> = []
async function cli (...args: string[]): Promise<Run> {
  if (running >= 2) await new Promise<void>((resolve) => waiting.push(resolve))
  running++
  try {
    return await runCli(args)
  } finally {
    running--
    waiting.shift()?.()
  }
}

/** Runs the CLI from source with no CORSGATE_* variables from the outer environment. */
function runCli (args: string[]): Promise<Run> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('CORSGATE_')) env[k] = v
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

const dir = t.testdir({
  'good.yaml': `
policies:
  default:
    origins: ["https://app.example.com", "https://*.example.com", "http://localhost:*"]
    deny: ["https://bad.example.com"]
    methods: [GET, HEAD, POST, PUT]
    allowHeaders: [Content-Type, X-CSRF-TOKEN]
    maxAge: 600
  api:
    origins: ["https://partner.org"]
    credentials: false
    mode: report-only
routes:
  - { path: /api/, upstream: "http://127.0.0.1:7000", policy: api }
  - { path: /, upstream: "http://127.0.0.1:8000" }
`,
  'public.yaml': `
policies:
  default: { origins: ["*"], credentials: false }
routes:
  - { path: /, upstream: "http://127.0.0.1:8000" }
`,
  'warn.yaml': `
policies:
  default: { origins: ["https://app.example.com"], maxAge: 86400 }
routes:
  - { path: /, upstream: "http://127.0.0.1:8000" }
`,
  'bad.yaml': `
server: { port: 99999 }
colour: red
policies:
  default:
    origins: ["https://app.example.com/", "https://*.co.uk", "*"]
routes:
  - { path: /, upstream: "http://127.0.0.1:8000", policy: nope }
`
})
const good = join(dir, 'good.yaml')

t.test('validate: a valid file', async (t) => {
  const r = await cli('validate', '--config', good)
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.trim(), `${good}: valid (2 policies, 2 routes)`)
  t.equal(r.stderr, '')
})

t.test('validate: a maxAge above the Chromium cap is valid, with a warning', async (t) => {
  const r = await cli('validate', '--config', join(dir, 'warn.yaml'))
  t.equal(r.code, 0)
  t.match(r.stderr, /^warning: policies\.default\.maxAge: 86400 s .*Chromium.*7200/m)
})

t.test('validate: every error listed, exit 2', async (t) => {
  const r = await cli('validate', '--config', join(dir, 'bad.yaml'))
  t.equal(r.code, 2)
  t.equal(r.stdout, '')
  t.match(r.stderr, `invalid configuration ${join(dir, 'bad.yaml')}:`)
  for (const line of [
    '(top level): unknown key "colour"',
    'server.port: ',
    'policies.default.origins[0]: "https://app.example.com/"',
    'policies.default.origins[1]: "https://*.co.uk"'
  ]) t.ok(r.stderr.includes(`  - ${line}`), `lists ${line}`)
})

t.test('validate: a missing file, an unknown flag', async (t) => {
  const [missing, flag, command] = await Promise.all([
    cli('validate', '--config', join(dir, 'nope.yaml')),
    cli('validate', '--config', good, '--verbose'),
    cli('frobnicate')
  ])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /cannot read the file/)
  t.equal(flag.code, 2)
  t.match(flag.stderr, /--verbose/)
  t.equal(command.code, 2)
  t.match(command.stderr, /unknown command "frobnicate"/)
})

t.test('check: allowed actual request names the rule and the headers', async (t) => {
  const r = await cli('check', '--config', good, '--origin', 'https://a.b.example.com')
  t.equal(r.code, 0, r.stderr)
  const lines = r.stdout.split('\n')
  t.equal(lines[0], 'ALLOWED: origin_allowed (rule "https://*.example.com" from file)')
  t.match(lines[1], /actual · policy default \(enforce\) · route \/ → http:\/\/127\.0\.0\.1:8000/)
  t.ok(lines.includes('  access-control-allow-origin: https://a.b.example.com'), 'echoes the origin')
  t.ok(lines.includes('  access-control-allow-credentials: true'))
  t.ok(lines.includes('  vary: Origin'))
})

t.test('check: a preflight with method and header', async (t) => {
  const r = await cli('check', '--config', good, '--origin', 'http://localhost:5173', '--method', 'PUT', '--header', 'Content-Type', '--header', 'x-csrf-token')
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^ALLOWED: origin_allowed \(rule "http:\/\/localhost:\*" from file\)/)
  t.match(r.stdout, /preflight · policy default/)
  t.match(r.stdout, /status 204/)
  t.match(r.stdout, /access-control-allow-methods: GET, HEAD, POST, PUT/)
  t.match(r.stdout, /access-control-max-age: 600/)
})

t.test('check: denials exit 1 and say why', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--origin', 'https://evil.com'], /^DENIED: origin_not_allowed\n/],
    [['--origin', 'https://evil.com@app.example.com'], /^DENIED: origin_not_allowed\n/],
    [['--origin', 'https://bad.example.com'], /^DENIED: denylisted \(rule "https:\/\/bad\.example\.com" from file\)/],
    [['--origin', 'https://app.example.com', '--method', 'DELETE'], /^DENIED: method_not_allowed \(method DELETE\) \(rule "https:\/\/app\.example\.com" from file\)/],
    [['--origin', 'https://app.example.com', '--header', 'X-Secret'], /^DENIED: header_not_allowed/]
  ]
  const runs = await Promise.all(cases.map(([args]) => cli('check', '--config', good, ...args)))
  runs.forEach((r, i) => {
    const [args, expected] = cases[i]!
    t.equal(r.code, 1, `${args.join(' ')}: exit 1`)
    t.match(r.stdout, expected, args.join(' '))
    t.match(r.stdout, /status 403/)
    t.notMatch(r.stdout, /access-control-allow-origin/, 'no CORS headers on a denial')
  })
})

t.test('check: --path picks the route and so the policy', async (t) => {
  const [api, report] = await Promise.all([
    cli('check', '--config', good, '--origin', 'https://partner.org', '--path', '/api/users'),
    cli('check', '--config', good, '--origin', 'https://evil.com', '--path', '/api/users')
  ])
  t.equal(api.code, 0)
  t.match(api.stdout, /policy api \(report-only\) · route \/api\/ → http:\/\/127\.0\.0\.1:7000/)
  t.match(api.stdout, /access-control-allow-origin: https:\/\/partner\.org/)
  t.equal(report.code, 1, 'report-only still reports the denial')
  t.match(report.stdout, /^DENIED \(report-only: served anyway\): origin_not_allowed/)
})

t.test('check: no Origin, "*" policy, --json', async (t) => {
  const [none, star, json] = await Promise.all([
    cli('check', '--config', good, '--origin', ''),
    cli('check', '--config', join(dir, 'public.yaml'), '--origin', 'https://anyone.test'),
    cli('check', '--config', good, '--origin', 'https://app.example.com', '--json')
  ])
  t.equal(none.code, 0)
  t.match(none.stdout, /^ALLOWED: no_origin/)
  t.equal(star.code, 0)
  t.match(star.stdout, /^ALLOWED: origin_allowed \(rule "\*" from file\)/)
  t.match(star.stdout, /access-control-allow-origin: \*/)
  t.equal(json.code, 0)
  const parsed = JSON.parse(json.stdout) as Record<string, unknown>
  t.match(parsed, { allowed: true, decision: 'allowed', reason: 'origin_allowed', rule: 'https://app.example.com', ruleSource: 'file', kind: 'actual', policy: 'default', status: 'forwarded' })
  t.equal((parsed.headers as Record<string, string>)['access-control-allow-origin'], 'https://app.example.com')
})

t.test('check: bad input and invalid config exit 2', async (t) => {
  const [noOrigin, badConfig, badFlag] = await Promise.all([
    cli('check', '--config', good),
    cli('check', '--config', join(dir, 'bad.yaml'), '--origin', 'https://app.example.com'),
    cli('check', '--config', good, '--origin', 'https://app.example.com', '--nope')
  ])
  t.equal(noOrigin.code, 2)
  t.match(noOrigin.stderr, /check needs --origin/)
  t.equal(badConfig.code, 2)
  t.match(badConfig.stderr, /policies\.default\.origins\[0\]/)
  t.equal(badFlag.code, 2)
  t.match(badFlag.stderr, /usage:/)
})

t.test('check names the refused header or method', async (t) => {
  const [header, method] = await Promise.all([
    cli('check', '--config', good, '--origin', 'https://app.example.com', '--method', 'POST', '--header', 'X-Socket-Id'),
    cli('check', '--config', good, '--origin', 'https://app.example.com', '--method', 'PROPFIND', '--json')
  ])
  t.equal(header.code, 1)
  t.match(header.stdout, /^DENIED: header_not_allowed \(header x-socket-id\)/)
  t.equal(method.code, 1)
  t.match(JSON.parse(method.stdout), { reason: 'method_not_allowed', detail: 'PROPFIND' })
})
