// Plugins from the config's `plugins:` section, with real packages from the npm registry:
// @fastify/rate-limit scoped to one route (its 429 readable by an allowed origin, preflights
// not counted), @fastify/helmet on every proxied answer, a local plugin file not wrapped with
// fastify-plugin, and a plugin that cannot be loaded stopping the start with exit 2.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startTestGateway, testConfigYaml } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'

t.test('rate-limit on /api/ only, helmet everywhere, a local plugin file on /api/', async (t) => {
  const dir = t.testdir({
    // A plain async plugin, not wrapped with fastify-plugin: corsgate still applies it to its routes.
    'stamp.mjs': 'export default async function stamp (app, opts) { app.addHook(\'onSend\', async (_req, reply, payload) => { reply.header(\'x-stamp\', opts.value); return payload }) }\n'
  })
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN], exposeHeaders: ['Retry-After'] } },
    plugins: [
      { name: '@fastify/helmet', options: { contentSecurityPolicy: false } },
      { name: '@fastify/rate-limit', options: { max: 2, timeWindow: 60_000 }, routes: ['/api/'] },
      { path: join(dir, 'stamp.mjs'), options: { value: 'api' }, routes: ['/api/'] }
    ],
    routes: [{ path: '/api/', upstream: upstream.url }, { path: '/', upstream: upstream.url }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  // Preflights are answered before any plugin: they do not count against the limit.
  for (let i = 0; i < 5; i++) {
    const preflight = await send(`${gw.url}/api/items`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'PUT' } })
    t.equal(preflight.status, 204, `preflight ${i + 1}`)
  }
  const first = await send(`${gw.url}/api/items`, { headers: { origin: ORIGIN } })
  const second = await send(`${gw.url}/api/items`, { headers: { origin: ORIGIN } })
  t.same([first.status, second.status], [200, 200], 'two requests within the limit are forwarded')
  t.equal(first.one('x-ratelimit-limit'), '2', 'rate-limit saw the proxied request')
  t.equal(first.one('x-content-type-options'), 'nosniff', 'helmet\'s headers are on the proxied answer')
  t.equal(first.one('x-stamp'), 'api', 'the local plugin file applies to its route')
  t.equal(first.one('access-control-allow-origin'), ORIGIN)

  const limited = await send(`${gw.url}/api/items`, { headers: { origin: ORIGIN } })
  t.equal(limited.status, 429, 'the third is refused by the plugin')
  t.equal(limited.one('access-control-allow-origin'), ORIGIN, 'the 429 carries the CORS headers: a browser app can read it')
  t.equal(limited.one('access-control-allow-credentials'), 'true')
  t.ok(limited.one('retry-after') !== undefined, 'with the plugin\'s Retry-After')
  t.match(limited.one('vary'), /Origin/)
  t.equal(upstream.seen.filter((r) => r.url === '/api/items').length, 2, 'the refused request never reached the upstream')

  // Other routes: helmet applies, the route-scoped plugins do not.
  for (let i = 0; i < 4; i++) {
    const other = await send(`${gw.url}/home`, { headers: { origin: ORIGIN } })
    t.equal(other.status, 200, `/home ${i + 1}: no rate limit there`)
    if (i === 0) {
      t.equal(other.one('x-ratelimit-limit'), undefined)
      t.equal(other.one('x-stamp'), undefined)
      t.equal(other.one('x-content-type-options'), 'nosniff')
    }
  }
  const denied = await send(`${gw.url}/api/items`, { headers: { origin: 'https://evil.example.org' } })
  t.equal(denied.status, 403, 'a denied origin is refused by corsgate before the plugins')
  t.equal(denied.one('x-ratelimit-limit'), undefined, 'the rate limiter never saw it')
})

t.test('a plugin that cannot be loaded, or names no configured route, stops the start with exit 2', async (t) => {
  const dir = t.testdir()
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['missing package', { name: '@corsgate/no-such-plugin' }, /plugins\[0\] \(@corsgate\/no-such-plugin\): cannot be loaded/],
    ['not a plugin', { path: 'data.json' }, /plugins\[0\] \(data\.json\)/],
    ['unknown route', { name: '@fastify/helmet', routes: ['/nowhere/'] }, /plugins\[0\] \(@fastify\/helmet\).*\/nowhere\/ name no configured route/],
    ['throws while registering', { path: 'broken.mjs' }, /plugins\[0\] \(broken\.mjs\).*broken on purpose/]
  ]
  writeFileSync(join(dir, 'data.json'), '{}')
  writeFileSync(join(dir, 'broken.mjs'), 'export default async function broken () { throw new Error(\'broken on purpose\') }\n')
  for (const [name, plugin, message] of cases) {
    const file = join(dir, `${name.replace(/ /g, '-')}.yaml`)
    writeFileSync(file, testConfigYaml({ plugins: [plugin], routes: [{ path: '/', upstream: 'http://127.0.0.1:1' }] }))
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
    child.stdout.resume()
    const [code] = await once(child, 'exit')
    t.equal(code, 2, `${name}: exit 2`)
    t.match(stderr, message, `${name}: the message names the plugin`)
  }
})
