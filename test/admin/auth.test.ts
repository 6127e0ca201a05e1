// `admin.auth`: a bearer token on every admin path but the probes (and /metrics when
// `openMetrics`), 401 otherwise; no token at start is a configuration error naming the field.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { AdminAuth, readAdminToken } from '../../src/admin/auth.js'
import { ConfigError, parseConfig } from '../../src/config/load.js'
import { startGateway } from '../../src/server.js'
import { startTestGateway, testConfigYaml } from '../helpers/gateway.js'
import { cleanEnv, ROOT } from '../helpers/cli-process.js'
import { send } from '../helpers/http.js'

const dir = mkdtempSync(join(tmpdir(), 'corsgate-admin-auth-'))
const TOKEN = 's3cret-admin-token'
const tokenFile = join(dir, 'token')
// As `kubectl create secret --from-file` leaves it: a trailing newline.
writeFileSync(tokenFile, `${TOKEN}\n`)

const GUARDED = ['/', '/page.js', '/page.css', '/overview', '/decisions', '/policies', '/explain?origin=https://a.example.com', '/observed?policy=default', '/metrics', '/no-such-path']

t.test('with admin.auth, every admin path but the probes needs the token', async (t) => {
  const gw = await startTestGateway({ admin: { auth: { tokenFile } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] })
  t.teardown(gw.close)
  for (const path of GUARDED) {
    const none = await send(`${gw.adminUrl}${path}`)
    t.equal(none.status, 401, `${path}: 401 without a token`)
    t.same(none.headers['www-authenticate'], ['Bearer realm="corsgate admin"', 'Basic realm="corsgate admin", charset="UTF-8"'], `${path}: says which schemes`)
    t.match(none.one('content-security-policy'), /default-src 'none'/, `${path}: the 401 has the CSP too`)
    t.same(none.json(), { error: 'unauthorized', statusCode: 401 })
    t.equal((await send(`${gw.adminUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN}x` } })).status, 401, `${path}: 401 with a wrong token`)
    t.equal((await send(`${gw.adminUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` } })).status, 401, `${path}: 401 with a prefix of the token`)
    t.equal((await send(`${gw.adminUrl}${path}`, { headers: { authorization: TOKEN } })).status, 401, `${path}: 401 without the scheme`)
    const ok = await send(`${gw.adminUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } })
    t.equal(ok.status, path === '/no-such-path' ? 404 : 200, `${path}: answered with the token`)
    const basic = await send(`${gw.adminUrl}${path}`, { headers: { authorization: `Basic ${Buffer.from(`anyone:${TOKEN}`).toString('base64')}` } })
    t.equal(basic.status, ok.status, `${path}: the token as a Basic password (a browser's prompt) works too`)
  }
  for (const path of ['/healthz', '/readyz']) {
    t.equal((await send(`${gw.adminUrl}${path}`)).status, 200, `${path} stays open for the kubelet`)
  }
  t.notOk(gw.logs.some((l) => JSON.stringify(l).includes(TOKEN)), 'the token is in no log line')
})

t.test('with admin.auth, /readyz answers probes without the token but shows the sources\' detail only with it', async (t) => {
  const gw = await startTestGateway({ admin: { auth: { tokenFile } }, redis: { url: 'redis://127.0.0.1:9' }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] })
  t.teardown(gw.close)
  const open = await send(`${gw.adminUrl}/readyz`)
  t.equal(open.status, 200)
  const redis = (open.json() as { sources: Record<string, Record<string, unknown>> }).sources.redis
  t.same(Object.keys(redis ?? {}).sort(), ['loaded', 'required'], 'no Redis address or error for an unauthenticated caller')
  const full = (await send(`${gw.adminUrl}/readyz`, { headers: { authorization: `Bearer ${TOKEN}` } })).json() as { sources: Record<string, Record<string, unknown>> }
  t.match(full.sources.redis, { target: /127\.0\.0\.1:9/ }, 'the detail with the token')
})

t.test('openMetrics leaves /metrics open, nothing else', async (t) => {
  const gw = await startTestGateway({ admin: { auth: { tokenFile, openMetrics: true } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] })
  t.teardown(gw.close)
  const metrics = await send(`${gw.adminUrl}/metrics`)
  t.equal(metrics.status, 200)
  t.match(metrics.body, /corsgate_requests_total|corsgate_policy_reloads_total/)
  t.equal((await send(`${gw.adminUrl}/metrics/x`)).status, 401, 'only /metrics itself')
  t.equal((await send(`${gw.adminUrl}/policies`)).status, 401)
})

t.test('tokenEnv reads the token from the environment', async (t) => {
  process.env.CORSGATE_TEST_ADMIN_TOKEN = 'from-the-env'
  t.teardown(() => { delete process.env.CORSGATE_TEST_ADMIN_TOKEN })
  const gw = await startTestGateway({ admin: { auth: { tokenEnv: 'CORSGATE_TEST_ADMIN_TOKEN' } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] })
  t.teardown(gw.close)
  t.equal((await send(`${gw.adminUrl}/policies`)).status, 401)
  t.equal((await send(`${gw.adminUrl}/policies`, { headers: { authorization: 'Bearer from-the-env' } })).status, 200)
})

t.test('no token, no start: a configuration error naming the field', async (t) => {
  const base = { routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] }
  const missing = join(dir, 'missing')
  const refusal = async (auth: Record<string, unknown>): Promise<unknown> =>
    await startGateway({ loaded: parseConfig(testConfigYaml({ ...base, admin: { auth } }), 'x.yaml', {}) }).then(async (g) => { await g.close(); return undefined }, (e: unknown) => e)
  const noFile = await refusal({ tokenFile: missing })
  t.ok(noFile instanceof ConfigError, 'a missing token file: ConfigError (exit 2)')
  t.match((noFile as Error).message, `admin.auth.tokenFile: cannot read ${missing}: ENOENT`)
  writeFileSync(join(dir, 'empty'), '\n  \n')
  t.match(((await refusal({ tokenFile: join(dir, 'empty') })) as Error).message, /admin\.auth\.tokenFile: .*empty is empty/, 'an empty token file is refused')
  t.throws(() => parseConfig(testConfigYaml({ ...base, admin: { auth: {} } }), 'x.yaml', {}), /admin\.auth.*exactly one of "tokenFile" and "tokenEnv"/)
  t.throws(() => parseConfig(testConfigYaml({ ...base, admin: { auth: { tokenFile, tokenEnv: 'X' } } }), 'x.yaml', {}), /exactly one of/)
  t.throws(() => parseConfig(testConfigYaml({ ...base, admin: { auth: { tokenFile, open: true } } }), 'x.yaml', {}), /admin\.auth/)

  delete process.env.CORSGATE_TEST_NO_SUCH_TOKEN
  const err = await refusal({ tokenEnv: 'CORSGATE_TEST_NO_SUCH_TOKEN' })
  t.ok(err instanceof ConfigError, 'a ConfigError (exit 2)')
  t.match((err as Error).message, /admin\.auth\.tokenEnv: the environment variable CORSGATE_TEST_NO_SUCH_TOKEN is not set or empty/)
})

t.test('AdminAuth: schemes and malformed headers', async (t) => {
  const auth = new AdminAuth('tok', false)
  t.ok(auth.accepts('Bearer tok'))
  t.ok(auth.accepts('bearer   tok'), 'scheme is case-insensitive (RFC 9110 §11.1)')
  t.notOk(auth.accepts(undefined))
  t.notOk(auth.accepts(''))
  t.notOk(auth.accepts('Bearer'))
  t.notOk(auth.accepts('Bearer '))
  t.notOk(auth.accepts('Digest tok'))
  t.notOk(auth.accepts(`Basic ${Buffer.from('tok').toString('base64')}`), 'Basic without a colon')
  t.ok(auth.accepts(`Basic ${Buffer.from(':tok').toString('base64')}`), 'Basic with an empty user name')
  t.notOk(auth.accepts(`Basic ${Buffer.from('tok:').toString('base64')}`), 'the token as the user name is not the password')
  t.notOk(auth.guards('/healthz'))
  t.ok(auth.guards('/metrics'))
  t.notOk(new AdminAuth('tok', true).guards('/metrics'))
  t.match(readAdminToken({ tokenFile: join(dir, 'missing'), openMetrics: false }, {}), /cannot read/)
  t.equal(readAdminToken({ tokenEnv: 'T', openMetrics: false }, { T: ' x\n' }), 'x')
})

t.test('corsgate validate checks the token file too', async (t) => {
  const config = join(dir, 'missing-token.yaml')
  writeFileSync(config, testConfigYaml({ admin: { auth: { tokenFile: join(dir, 'nope') } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] }))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'validate', '--config', config], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const [code] = await once(child, 'close') as [number]
  t.equal(code, 2)
  t.match(stderr, /admin\.auth\.tokenFile: cannot read .*nope: ENOENT/)
})
