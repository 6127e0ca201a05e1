// The behaviour table of corsgate in front of a real upstream: decisions, preflights, `Vary`,
// the upstream's own CORS headers stripped, errors that carry CORS headers, websocket upgrades.
// One table, run against every way corsgate is deployed: the standalone gateway
// (test/gateway/behaviour-table.test.ts) and the plugin inside a Fastify + @fastify/http-proxy
// app (test/library/fastify-plugin.test.ts). A subject passes by behaving the same.
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import type { Test } from 'tap'
import WebSocket from 'ws'
import { ADVERSARIAL_POLICY, ALLOWED_ORIGINS, REFUSED_ORIGINS } from './adversarial-origins.js'
import { corsHeaderNames, send } from './http.js'
import { deadPort, startUpstream, type Upstream, type UpstreamHandler } from './upstream.js'
import { startWsEcho } from './ws-upstream.js'

/** A route as the table declares it: which paths a policy covers. The subject adds the upstream. */
export interface TableRoute {
  path: string
  policy?: string
  websocket?: boolean
}

export interface SubjectSetup {
  policies: Record<string, Record<string, unknown>>
  /** Omitted: one catch-all route (standalone) or no routes at all (plugin: the `default` policy). */
  routes?: TableRoute[]
  upstream: string
}

export interface Subject {
  url: string
  close: () => Promise<void>
}

/** One way of deploying corsgate, started in front of `setup.upstream`. */
export interface Harness {
  name: string
  start: (setup: SubjectSetup) => Promise<Subject>
}

const ORIGIN = 'https://app.example.com'
const EVIL = 'https://evil.example'
const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'

/** What a legacy backend sends: its own CORS headers (which corsgate must replace) and a Vary. */
const chattyUpstream: UpstreamHandler = (req, res) => {
  res.setHeader('access-control-allow-origin', '*')
  res.setHeader('access-control-allow-methods', 'TRACE')
  res.setHeader('access-control-expose-headers', 'X-Upstream-Secret')
  res.setHeader('vary', 'Accept-Encoding')
  res.setHeader('content-type', 'application/json')
  res.end(JSON.stringify({ method: req.method, url: req.url }))
}

const preflight = (origin: string, method = 'PUT', headers?: string): Record<string, string> => ({
  origin,
  'access-control-request-method': method,
  ...(headers === undefined ? {} : { 'access-control-request-headers': headers })
})

async function subject (t: Test, harness: Harness, setup: Omit<SubjectSetup, 'upstream'>, handler: UpstreamHandler = chattyUpstream): Promise<{ url: string, upstream: Upstream }> {
  const upstream = await startUpstream(handler)
  t.teardown(upstream.close)
  const s = await harness.start({ ...setup, upstream: upstream.url })
  t.teardown(s.close)
  return { url: s.url, upstream }
}

export function runBehaviourTable (t: Test, harness: Harness): void {
  t.test(`${harness.name}: an allowed preflight is answered by corsgate, never forwarded`, async (t) => {
    const { url, upstream } = await subject(t, harness, { policies: { default: { origins: [ORIGIN], maxAge: 600 } } })
    const res = await send(`${url}/api/users`, { method: 'OPTIONS', headers: preflight(ORIGIN, 'PUT', 'content-type,authorization') })
    t.equal(res.status, 204)
    t.equal(res.one('access-control-allow-origin'), ORIGIN)
    t.equal(res.one('access-control-allow-credentials'), 'true')
    t.equal(res.one('access-control-allow-methods'), 'GET, HEAD, POST, PUT, PATCH, DELETE')
    t.equal(res.one('access-control-allow-headers'), 'Content-Type, Authorization, X-Requested-With, X-CSRF-TOKEN, X-XSRF-TOKEN')
    t.equal(res.one('access-control-max-age'), '600')
    t.equal(res.one('content-length'), '0')
    t.equal(res.body, '')
    t.equal(res.one('vary'), PREFLIGHT_VARY)
    t.equal(upstream.seen.length, 0, 'the upstream saw nothing')
  })

  t.test(`${harness.name}: a denied preflight is 403 with the reason and no CORS headers`, async (t) => {
    const { url, upstream } = await subject(t, harness, { policies: { default: { origins: [ORIGIN] } } })
    const cases: Array<[Record<string, string>, string, string | undefined]> = [
      [preflight(EVIL), 'origin_not_allowed', undefined],
      [preflight(ORIGIN, 'TRACE'), 'method_not_allowed', 'TRACE'],
      [preflight(ORIGIN, 'PUT', 'content-type,x-unlisted'), 'header_not_allowed', 'x-unlisted']
    ]
    for (const [headers, reason, detail] of cases) {
      const res = await send(`${url}/x`, { method: 'OPTIONS', headers })
      t.equal(res.status, 403, reason)
      t.same(res.json(), detail === undefined ? { error: 'cors_denied', reason } : { error: 'cors_denied', reason, detail })
      t.same(corsHeaderNames(res), [], `${reason}: no CORS headers`)
      t.equal(res.one('vary'), PREFLIGHT_VARY)
    }
    t.equal(upstream.seen.length, 0)
  })

  t.test(`${harness.name}: preflight options: "*" headers echoed, private network, preflightStatus`, async (t) => {
    const { url } = await subject(t, harness, { policies: { default: { origins: [ORIGIN], allowHeaders: '*', privateNetwork: true, preflightStatus: 200 } } })
    const res = await send(`${url}/x`, { method: 'OPTIONS', headers: { ...preflight(ORIGIN, 'PUT', 'x-one,x-two'), 'access-control-request-private-network': 'true' } })
    t.equal(res.status, 200)
    t.equal(res.one('access-control-allow-headers'), 'x-one,x-two')
    t.equal(res.one('access-control-allow-private-network'), 'true')
    t.equal(res.one('access-control-max-age'), undefined)
  })

  t.test(`${harness.name}: OPTIONS that is not a preflight is forwarded`, async (t) => {
    const { url, upstream } = await subject(t, harness, { policies: { default: { origins: [ORIGIN], methods: ['GET', 'OPTIONS'] } } })
    t.equal((await send(`${url}/x`, { method: 'OPTIONS' })).status, 200)
    const withOrigin = await send(`${url}/y`, { method: 'OPTIONS', headers: { origin: ORIGIN } })
    t.equal(withOrigin.status, 200)
    t.equal(withOrigin.one('access-control-allow-origin'), ORIGIN)
    t.same(upstream.seen.map((r) => `${r.method} ${r.url}`), ['OPTIONS /x', 'OPTIONS /y'])
  })

  t.test(`${harness.name}: an allowed request is forwarded; the upstream's CORS headers are replaced and Vary appended`, async (t) => {
    const { url, upstream } = await subject(t, harness, { policies: { default: { origins: [ORIGIN], exposeHeaders: ['X-Request-Id'] } } })
    const res = await send(`${url}/api/users?page=2`, { headers: { origin: ORIGIN, cookie: 'session=1' } })
    t.equal(res.status, 200)
    t.same(res.json(), { method: 'GET', url: '/api/users?page=2' })
    t.same(res.headers['access-control-allow-origin'], [ORIGIN], 'one allow-origin: ours, not the upstream\'s *')
    t.equal(res.one('access-control-allow-credentials'), 'true')
    t.equal(res.one('access-control-expose-headers'), 'X-Request-Id')
    t.equal(res.one('access-control-allow-methods'), undefined, 'the upstream\'s allow-methods is gone')
    t.equal(res.one('vary'), 'Accept-Encoding, Origin', 'Origin appended to the upstream\'s Vary')
    t.equal(upstream.seen[0]?.headers.origin, ORIGIN, 'Origin reaches the upstream unchanged')
    t.equal(upstream.seen[0]?.headers.cookie, 'session=1')
  })

  t.test(`${harness.name}: stripUpstreamCors: false keeps the upstream's own CORS headers that corsgate does not set`, async (t) => {
    const { url } = await subject(t, harness, { policies: { default: { origins: [ORIGIN], stripUpstreamCors: false } } })
    const res = await send(`${url}/x`, { headers: { origin: ORIGIN } })
    t.same(res.headers['access-control-allow-origin'], [ORIGIN])
    t.equal(res.one('access-control-expose-headers'), 'X-Upstream-Secret')
  })

  t.test(`${harness.name}: denied requests are 403, carry Vary: Origin and no CORS headers, never reach the upstream`, async (t) => {
    const { url, upstream } = await subject(t, harness, { policies: { default: { origins: ['https://*.example.com'], deny: ['https://legacy.example.com'], methods: ['GET', 'HEAD'] } } })
    const cases: Array<[Record<string, string>, string, Record<string, unknown>]> = [
      [{ origin: EVIL }, 'GET', { error: 'cors_denied', reason: 'origin_not_allowed' }],
      [{ origin: 'https://legacy.example.com' }, 'GET', { error: 'cors_denied', reason: 'denylisted' }],
      [{ origin: 'https://app.example.com', 'content-type': 'text/plain' }, 'POST', { error: 'cors_denied', reason: 'method_not_allowed', detail: 'POST' }]
    ]
    for (const [headers, method, body] of cases) {
      const res = await send(`${url}/x`, { method, headers, body: method === 'POST' ? 'x' : undefined })
      t.equal(res.status, 403, String(body.reason))
      t.same(res.json(), body)
      t.same(corsHeaderNames(res), [])
      t.equal(res.one('vary'), 'Origin')
    }
    t.equal(upstream.seen.length, 0)
  })

  t.test(`${harness.name}: the grammar's adversarial origins are refused, honest ones echoed byte for byte`, async (t) => {
    const { url, upstream } = await subject(t, harness, { policies: { default: ADVERSARIAL_POLICY } })
    for (const origin of REFUSED_ORIGINS) {
      const res = await send(`${url}/x`, { headers: { origin } })
      t.equal(res.status, 403, JSON.stringify(origin))
      t.same(corsHeaderNames(res), [], `${JSON.stringify(origin)}: no CORS headers`)
    }
    t.equal(upstream.seen.length, 0)
    for (const origin of ALLOWED_ORIGINS) {
      const res = await send(`${url}/x`, { headers: { origin } })
      t.same(res.headers['access-control-allow-origin'], [origin], origin)
    }
  })

  t.test(`${harness.name}: no Origin, same origin, and a * policy`, async (t) => {
    const { url, upstream } = await subject(t, harness, {
      policies: { default: { origins: [ORIGIN] }, open: { origins: ['*'], credentials: false }, strict: { origins: [ORIGIN], noOrigin: 'deny' } },
      routes: [{ path: '/public/', policy: 'open' }, { path: '/strict/', policy: 'strict' }, { path: '/' }]
    })
    const bare = await send(`${url}/x`)
    t.equal(bare.status, 200, 'no Origin: allowed')
    t.same(corsHeaderNames(bare), [])
    t.equal(bare.one('vary'), 'Accept-Encoding, Origin', 'Vary: Origin on a no-origin answer too')
    const host = new URL(url).host
    const same = await send(`${url}/x`, { headers: { origin: `http://${host}` } })
    t.equal(same.status, 200, 'same origin: allowed')
    const open = await send(`${url}/public/x`, { headers: { origin: EVIL } })
    t.equal(open.status, 200, 'the route\'s * policy')
    t.equal(open.one('access-control-allow-origin'), '*')
    t.equal(open.one('access-control-allow-credentials'), undefined)
    t.equal(open.one('vary'), 'Accept-Encoding', 'a * policy adds no Vary: Origin')
    const strict = await send(`${url}/strict/x`)
    t.equal(strict.status, 403, 'noOrigin: deny')
    t.same(strict.json(), { error: 'cors_denied', reason: 'no_origin_denied' })
    t.equal(upstream.seen.length, 3)
  })

  t.test(`${harness.name}: report-only serves would-be denials; headers-only forwards them without CORS headers`, async (t) => {
    const { url, upstream } = await subject(t, harness, {
      policies: { default: { origins: [ORIGIN], mode: 'report-only' }, classic: { origins: [ORIGIN], mode: 'headers-only' } },
      routes: [{ path: '/classic/', policy: 'classic' }, { path: '/' }]
    })
    const trial = await send(`${url}/x`, { headers: { origin: EVIL } })
    t.equal(trial.status, 200, 'report-only: served')
    const classic = await send(`${url}/classic/x`, { headers: { origin: EVIL } })
    t.equal(classic.status, 200, 'headers-only: forwarded')
    t.same(corsHeaderNames(classic), [], 'headers-only: no CORS headers for a denied origin')
    t.match(classic.one('vary'), /Origin/)
    t.equal(upstream.seen.length, 2)
  })

  t.test(`${harness.name}: errors carry the CORS headers of an allowed origin`, async (t) => {
    const port = await deadPort()
    const s = await harness.start({ policies: { default: { origins: [ORIGIN] } }, upstream: `http://127.0.0.1:${port}` })
    t.teardown(s.close)
    const down = await send(`${s.url}/x`, { headers: { origin: ORIGIN } })
    // The status is the forwarder's (corsgate's 502, or what the app's proxy answers).
    t.ok(down.status >= 500, `upstream down: ${down.status}`)
    t.match(down.json(), { statusCode: down.status })
    t.equal(down.one('access-control-allow-origin'), ORIGIN, 'the error carries CORS headers')
    t.equal(down.one('access-control-allow-credentials'), 'true')
    t.match(down.one('vary'), /Origin/)
    const denied = await send(`${s.url}/x`, { headers: { origin: EVIL } })
    t.equal(denied.status, 403, 'a refused origin still gets its 403, not the upstream error')
    for (const path of ['/a/../b', '/a/%2e%2e/b', '/a%2fb']) {
      const bad = await send(`${s.url}${path}`, { headers: { origin: ORIGIN } })
      t.equal(bad.status, 400, `${path}: refused before the upstream`)
      t.match(bad.json(), { statusCode: 400, code: 'CORSGATE_BAD_PATH' })
      t.equal(bad.one('access-control-allow-origin'), ORIGIN)
    }
  })

  t.test(`${harness.name}: websocket upgrades are judged; a refused one never reaches the upstream`, async (t) => {
    const up = await startWsEcho()
    let connections = 0
    up.server.on('connection', () => { connections++ })
    t.teardown(up.close)
    const s = await harness.start({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', websocket: true }], upstream: up.url })
    t.teardown(s.close)
    const wsUrl = `${s.url.replace('http', 'ws')}/ws`

    const ws = new WebSocket(wsUrl, { headers: { origin: ORIGIN } })
    await once(ws, 'open')
    ws.send('hello')
    const [echo] = await once(ws, 'message') as [Buffer]
    t.equal(echo.toString(), 'hello', 'an allowed origin gets a working websocket')
    t.equal(up.upgrades[0]?.headers.origin, ORIGIN, 'the upgrade reaches the upstream with its Origin')
    ws.close()
    await once(ws, 'close')
    const before = connections

    for (const headers of [{ origin: EVIL }, { origin: `${ORIGIN}, ${EVIL}` }]) {
      const refused = new WebSocket(wsUrl, { headers })
      refused.on('error', () => {})
      const [, response] = await once(refused, 'unexpected-response') as [unknown, IncomingMessage]
      const chunks: Buffer[] = []
      response.on('data', (c: Buffer) => chunks.push(c))
      await once(response, 'end')
      refused.terminate()
      t.equal(response.statusCode, 403, `${headers.origin}: 403 on the handshake`)
      t.same(JSON.parse(Buffer.concat(chunks).toString()), { error: 'cors_denied', reason: 'origin_not_allowed' })
      t.equal(response.headers['access-control-allow-origin'], undefined)
    }
    t.equal(up.upgrades.length, 1, 'only the allowed upgrade reached the upstream')
    t.equal(connections, before, 'no connection to the upstream for a refused upgrade')
  })
}
