import t, { type Test } from 'tap'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { corsHeaderNames, send } from '../helpers/http.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

async function setup (t: Test, policy: Record<string, unknown>): Promise<{ gw: TestGateway, upstream: Upstream }> {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: policy }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  return { gw, upstream }
}

const preflight = (origin: string, method = 'PUT', headers?: string): Record<string, string> => ({
  origin,
  'access-control-request-method': method,
  ...(headers === undefined ? {} : { 'access-control-request-headers': headers })
})

t.test('an allowed preflight is answered by corsgate and never forwarded', async (t) => {
  const { gw, upstream } = await setup(t, { origins: ['https://app.example.com'], maxAge: 600 })
  const res = await send(`${gw.url}/api/users`, { method: 'OPTIONS', headers: preflight('https://app.example.com', 'PUT', 'content-type,authorization') })
  t.equal(res.status, 204)
  t.equal(res.one('access-control-allow-origin'), 'https://app.example.com')
  t.equal(res.one('access-control-allow-credentials'), 'true')
  t.equal(res.one('access-control-allow-methods'), 'GET, HEAD, POST, PUT, PATCH, DELETE')
  t.equal(res.one('access-control-allow-headers'), 'Content-Type, Authorization, X-Requested-With, X-CSRF-TOKEN, X-XSRF-TOKEN')
  t.equal(res.one('access-control-max-age'), '600')
  t.equal(res.one('content-length'), '0')
  t.equal(res.body, '')
  t.equal(res.one('vary'), 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers')
  t.equal(upstream.seen.length, 0, 'the upstream saw nothing')
})

t.test('a denied preflight is 403 with the JSON reason and no Access-Control-Allow-* headers', async (t) => {
  const { gw, upstream } = await setup(t, { origins: ['https://app.example.com'] })
  // The refused method or header is named (`detail`), so the one that needs listing is known.
  const cases: Array<[Record<string, string>, string, string | undefined]> = [
    [preflight('https://evil.example.org'), 'origin_not_allowed', undefined],
    [preflight('https://app.example.com', 'TRACE'), 'method_not_allowed', 'TRACE'],
    [preflight('https://app.example.com', 'PUT', 'content-type,x-unlisted'), 'header_not_allowed', 'x-unlisted']
  ]
  for (const [headers, reason, detail] of cases) {
    const res = await send(`${gw.url}/x`, { method: 'OPTIONS', headers })
    t.equal(res.status, 403, reason)
    t.same(res.json(), detail === undefined ? { error: 'cors_denied', reason } : { error: 'cors_denied', reason, detail })
    if (detail !== undefined) t.match(gw.logs.find((l) => l.msg === 'request' && l.reason === reason), { detail }, `${reason}: the log line names ${detail}`)
    t.same(corsHeaderNames(res), [], `${reason}: no CORS headers`)
    t.equal(res.one('vary'), 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers')
  }
  t.equal(upstream.seen.length, 0)
})

t.test('CORS-safelisted request headers need no listing; listed ones are case-insensitive', async (t) => {
  const { gw } = await setup(t, { origins: ['https://app.example.com'], allowHeaders: ['X-Api-Key'] })
  const res = await send(`${gw.url}/x`, { method: 'OPTIONS', headers: preflight('https://app.example.com', 'POST', 'accept, Accept-Language, content-language, x-API-key') })
  t.equal(res.status, 204)
  const denied = await send(`${gw.url}/x`, { method: 'OPTIONS', headers: preflight('https://app.example.com', 'POST', 'content-type') })
  t.equal(denied.status, 403, 'content-type in a preflight means a non-safelisted value: it must be listed')
})

t.test('allowHeaders "*" echoes the requested list, never a literal *', async (t) => {
  const { gw } = await setup(t, { origins: ['https://app.example.com'], allowHeaders: '*' })
  const res = await send(`${gw.url}/x`, { method: 'OPTIONS', headers: preflight('https://app.example.com', 'PUT', 'x-one,x-two') })
  t.equal(res.status, 204)
  t.equal(res.one('access-control-allow-headers'), 'x-one,x-two')
})

t.test('preflightStatus, no max-age when unset, private network access', async (t) => {
  const { gw } = await setup(t, { origins: ['https://app.example.com'], preflightStatus: 200, privateNetwork: true })
  const res = await send(`${gw.url}/x`, { method: 'OPTIONS', headers: { ...preflight('https://app.example.com'), 'access-control-request-private-network': 'true' } })
  t.equal(res.status, 200)
  t.equal(res.one('access-control-max-age'), undefined)
  t.equal(res.one('access-control-allow-private-network'), 'true')
  const plain = await send(`${gw.url}/x`, { method: 'OPTIONS', headers: preflight('https://app.example.com') })
  t.equal(plain.one('access-control-allow-private-network'), undefined, 'only when asked')
})

t.test('private network access is not granted when the policy has it off', async (t) => {
  const { gw } = await setup(t, { origins: ['https://app.example.com'] })
  const res = await send(`${gw.url}/x`, { method: 'OPTIONS', headers: { ...preflight('https://app.example.com'), 'access-control-request-private-network': 'true' } })
  t.equal(res.status, 204)
  t.equal(res.one('access-control-allow-private-network'), undefined)
})

t.test('a * policy without credentials answers *', async (t) => {
  const { gw } = await setup(t, { origins: ['*'], credentials: false, methods: ['GET', 'HEAD'] })
  const res = await send(`${gw.url}/x`, { method: 'OPTIONS', headers: preflight('https://anyone.example', 'GET') })
  t.equal(res.status, 204)
  t.equal(res.one('access-control-allow-origin'), '*')
  t.equal(res.one('access-control-allow-credentials'), undefined)
})

t.test('OPTIONS without Origin or Access-Control-Request-Method is an ordinary request and is forwarded', async (t) => {
  const { gw, upstream } = await setup(t, { origins: ['https://app.example.com'], methods: ['GET', 'OPTIONS'] })
  const bare = await send(`${gw.url}/x`, { method: 'OPTIONS' })
  t.equal(bare.status, 200)
  const withOrigin = await send(`${gw.url}/y`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com' } })
  t.equal(withOrigin.status, 200)
  t.equal(withOrigin.one('access-control-allow-origin'), 'https://app.example.com')
  t.same(upstream.seen.map((r) => `${r.method} ${r.url}`), ['OPTIONS /x', 'OPTIONS /y'])
})
