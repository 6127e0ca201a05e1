// The container example: CORSGATE_ORIGINS adds to the shipped default policy, whose
// development origins (http://localhost:*, http://127.0.0.1:*, with credentials) would then
// be trusted in production too. CORSGATE_ORIGINS_MODE=replace replaces them; and under
// NODE_ENV=production the development origins still in force are reported loudly.
import t from 'tap'
import { send } from '../helpers/http.js'
import { startCliGateway } from '../helpers/cli-process.js'
import { startUpstream } from '../helpers/upstream.js'

t.setTimeout(300_000)

const preflight = async (url: string, origin: string): Promise<number> =>
  (await send(`${url}/`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } })).status

t.test('CORSGATE_ORIGINS_MODE=replace: only the listed origins, the development ones gone', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const gw = await startCliGateway(['--config', 'config/default.yaml'], {
    NODE_ENV: 'production',
    CORSGATE_HOST: '127.0.0.1',
    CORSGATE_PORT: '0',
    CORSGATE_ADMIN_PORT: '0',
    CORSGATE_UPSTREAM: upstream.url,
    CORSGATE_ORIGINS: 'https://app.example.com',
    CORSGATE_ORIGINS_MODE: 'replace'
  })
  t.teardown(async () => { await gw.stop() })
  t.equal(await preflight(gw.url, 'https://app.example.com'), 204, 'the listed origin is allowed')
  t.equal(await preflight(gw.url, 'http://localhost:3000'), 403, 'a local dev server is refused')
  t.equal(await preflight(gw.url, 'http://127.0.0.1:5173'), 403)
  t.notOk(gw.lines.some((l) => l.level === 40 && /development origins/.test(l.msg)), 'no development-origin warning')
})

t.test('the default add mode in production keeps the development origins and warns at start', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const env = {
    NODE_ENV: 'production',
    CORSGATE_HOST: '127.0.0.1',
    CORSGATE_PORT: '0',
    CORSGATE_ADMIN_PORT: '0',
    CORSGATE_UPSTREAM: upstream.url,
    CORSGATE_ORIGINS: 'https://app.example.com'
  }
  const gw = await startCliGateway(['--config', 'config/default.yaml'], env)
  t.teardown(async () => { await gw.stop() })
  t.equal(await preflight(gw.url, 'http://localhost:3000'), 204, 'added: the development origin is still allowed')
  const warning = gw.lines.find((l) => l.level === 40 && /development origins/.test(l.msg))
  t.ok(warning, 'a warning at start')
  t.match(warning?.msg, /policies\.default\.origins: NODE_ENV=production.*http:\/\/localhost:\*, http:\/\/127\.0\.0\.1:\*.*with credentials.*CORSGATE_ORIGINS_MODE=replace/)
  await gw.stop()

  const meant = await startCliGateway(['--config', 'config/default.yaml'], { ...env, CORSGATE_ALLOW_DEV_ORIGINS: 'true' })
  t.teardown(async () => { await meant.stop() })
  t.notOk(meant.lines.some((l) => l.level === 40 && /development origins/.test(l.msg)), 'CORSGATE_ALLOW_DEV_ORIGINS=true: no warning')
  const dev = await startCliGateway(['--config', 'config/default.yaml'], { ...env, NODE_ENV: 'development' })
  t.teardown(async () => { await dev.stop() })
  t.notOk(dev.lines.some((l) => l.level === 40 && /development origins/.test(l.msg)), 'outside production: no warning')
})

t.test('bad mode values are named', async (t) => {
  const { parseConfig } = await import('../../src/config/load.js')
  const text = 'policies: { default: { origins: ["http://localhost:*"] } }\nroutes: [{ path: /, upstream: "http://127.0.0.1:9" }]\n'
  t.throws(() => parseConfig(text, 'x.yaml', { CORSGATE_ORIGINS_MODE: 'swap', CORSGATE_ORIGINS: 'https://a.example.com' }), { message: /CORSGATE_ORIGINS_MODE: must be "add" or "replace", got "swap"/ })
  t.throws(() => parseConfig(text, 'x.yaml', { CORSGATE_ORIGINS_MODE: 'replace' }), { message: /CORSGATE_ORIGINS_MODE=replace: CORSGATE_ORIGINS is empty/ })
  const replaced = parseConfig(text, 'x.yaml', { CORSGATE_ORIGINS_MODE: 'replace', CORSGATE_ORIGINS: 'https://a.example.com' })
  t.same(replaced.config.policies.default?.origins, [], 'the file origins are dropped')
  t.same(replaced.envOrigins, ['https://a.example.com'])
})
