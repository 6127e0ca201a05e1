// The CORS behaviour table over TLS: HTTP/1.1 (node:https), HTTP/2 (node:http2) and undici
// with allowH2 get the same decisions, statuses, headers and bodies, and the same as plain
// HTTP; requests of every kind reach the upstream as HTTP/1.1 with the same headers.
import t from 'tap'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { deadPort, startUpstream, type Upstream } from '../helpers/upstream.js'
import { h2Session, makeTestCa, sendH2, sendHttps, sendUndici, undiciH2Agent, type TestCa, type TlsAnswer, type TlsRequest } from '../helpers/tls.js'

const APP = 'https://app.example.com'
const EVIL = 'https://evil.example.org'

// Headers that belong to a connection, not to an answer: HTTP/1.1 has them, HTTP/2 cannot.
// Content-Length is compared through the body (HTTP/2 sends none on a 204, RFC 9110 §8.6).
const CONNECTION_HEADERS = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length'])

function comparable (a: TlsAnswer): { status: number, headers: Record<string, string>, body: unknown } {
  const headers = Object.fromEntries(Object.entries(a.headers).filter(([n]) => !CONNECTION_HEADERS.has(n)))
  let body: unknown = a.body
  try {
    const json = JSON.parse(a.body) as Record<string, unknown>
    // The echo upstream reports the headers it got: keep those the gateway sets or passes on.
    if (typeof json.headers === 'object' && json.headers !== null) {
      const h = json.headers as Record<string, string>
      json.headers = { host: h.host, origin: h.origin, 'x-forwarded-proto': h['x-forwarded-proto'], 'x-forwarded-host': h['x-forwarded-host'], pseudo: Object.keys(h).filter((n) => n.startsWith(':')) }
    }
    body = json
  } catch {}
  return { status: a.status, headers, body }
}

let ca: TestCa
let upstream: Upstream
let gw: TestGateway
let plain: TestGateway

t.before(async () => {
  ca = makeTestCa()
  const { certFile, keyFile } = ca.issue('server')
  // The upstream speaks CORS itself; corsgate must replace what it says.
  upstream = await startUpstream((req, res, body) => {
    res.setHeader('content-type', 'application/json')
    res.setHeader('access-control-allow-origin', '*')
    res.setHeader('access-control-allow-methods', 'GET, DELETE')
    res.setHeader('vary', 'Accept-Encoding')
    res.setHeader('x-upstream', 'yes')
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyLength: body.length, httpVersion: req.httpVersion }))
  })
  const dead = await deadPort()
  const input = {
    policies: { default: { origins: [APP], exposeHeaders: ['X-Upstream'], maxAge: 600 } },
    routes: [{ path: '/down/', upstream: `http://127.0.0.1:${dead}` }, { path: '/', upstream: upstream.url }]
  }
  gw = await startTestGateway({ ...input, server: { tls: { certFile, keyFile } } })
  plain = await startTestGateway(input)
})
t.teardown(async () => {
  await gw.close()
  await plain.close()
  await upstream.close()
  ca.remove()
})

interface Case {
  name: string
  path: string
  req: TlsRequest
  expect: (a: TlsAnswer) => void
  /** The upstream must not see the request. */
  blocked?: boolean
}

const cases: Case[] = [
  {
    name: 'allowed GET: forwarded, upstream CORS headers replaced, Vary appended',
    path: '/api/items?x=1',
    req: { headers: { origin: APP } },
    expect: (a) => {
      t.equal(a.status, 200)
      t.equal(a.headers['access-control-allow-origin'], APP)
      t.equal(a.headers['access-control-allow-credentials'], 'true')
      t.equal(a.headers['access-control-expose-headers'], 'X-Upstream')
      t.notOk('access-control-allow-methods' in a.headers, 'the upstream\'s own CORS header is stripped')
      t.equal(a.headers.vary, 'Accept-Encoding, Origin')
      t.equal(a.headers['x-upstream'], 'yes')
    }
  },
  {
    name: 'denied GET: 403 before the upstream',
    path: '/api/items',
    req: { headers: { origin: EVIL } },
    blocked: true,
    expect: (a) => {
      t.equal(a.status, 403)
      t.same(JSON.parse(a.body), { error: 'cors_denied', reason: 'origin_not_allowed' })
      t.same(Object.keys(a.headers).filter((n) => n.startsWith('access-control-')), [])
      t.equal(a.headers.vary, 'Origin')
    }
  },
  {
    name: 'allowed preflight: answered, not forwarded',
    path: '/api/items',
    req: { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type' } },
    blocked: true,
    expect: (a) => {
      t.equal(a.status, 204)
      t.equal(a.headers['access-control-allow-origin'], APP)
      t.equal(a.headers['access-control-allow-methods'], 'GET, HEAD, POST, PUT, PATCH, DELETE')
      t.equal(a.headers['access-control-max-age'], '600')
      t.equal(a.headers.vary, 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers')
      t.equal(a.body, '')
    }
  },
  {
    name: 'denied preflight: 403',
    path: '/api/items',
    req: { method: 'OPTIONS', headers: { origin: EVIL, 'access-control-request-method': 'PUT' } },
    blocked: true,
    expect: (a) => {
      t.equal(a.status, 403)
      t.notOk('access-control-allow-origin' in a.headers)
    }
  },
  {
    name: 'no Origin: forwarded, no CORS headers, Vary: Origin',
    path: '/plain',
    req: {},
    expect: (a) => {
      t.equal(a.status, 200)
      t.notOk('access-control-allow-origin' in a.headers)
      t.equal(a.headers.vary, 'Accept-Encoding, Origin')
    }
  },
  {
    name: 'POST with a body: streamed to the upstream',
    path: '/upload',
    req: { method: 'POST', headers: { origin: APP, 'content-type': 'text/plain' }, body: 'x'.repeat(100_000) },
    expect: (a) => {
      t.equal(a.status, 200)
      t.match(JSON.parse(a.body), { method: 'POST', bodyLength: 100_000, httpVersion: '1.1' })
    }
  },
  {
    name: 'upstream down: 502 with the CORS headers of the allowed origin',
    path: '/down/x',
    req: { headers: { origin: APP } },
    blocked: true,
    expect: (a) => {
      t.equal(a.status, 502)
      t.match(JSON.parse(a.body), { error: 'bad_gateway', statusCode: 502, code: 'CORSGATE_UPSTREAM_UNAVAILABLE' })
      t.equal(a.headers['access-control-allow-origin'], APP)
      t.equal(a.headers.vary, 'Origin')
    }
  }
]

t.test('HTTP/1.1 over TLS, HTTP/2 and undici allowH2 get identical answers, equal to plain HTTP', async (t) => {
  const session = await h2Session(gw.url, ca.ca)
  const agent = undiciH2Agent(ca.ca)
  t.teardown(async () => { session.close(); await agent.close() })
  for (const c of cases) {
    const before = upstream.seen.length
    const h1 = await sendHttps(gw.url + c.path, ca.ca, c.req)
    const h2 = await sendH2(session, c.path, c.req)
    const und = await sendUndici(agent, gw.url + c.path, c.req)
    const reference = await send(plain.url + c.path, { method: c.req.method, headers: c.req.headers, body: c.req.body })
    t.equal(h1.protocol, 'http/1.1', `${c.name}: node:https spoke HTTP/1.1`)
    t.test(c.name, async () => { c.expect(h2) })
    t.same(comparable(h1), comparable(h2), `${c.name}: HTTP/1.1 and HTTP/2 agree`)
    t.same(comparable(und), comparable(h2), `${c.name}: undici and node:http2 agree`)
    const ref: TlsAnswer = { status: reference.status, headers: Object.fromEntries(Object.entries(reference.headers).map(([n, v]) => [n, v.join(', ')])), body: reference.body, protocol: 'http/1.1' }
    const expected = comparable(ref)
    // The plain gateway's upstream is told "http"; everything else is the same.
    const actual = comparable(h2)
    if (typeof actual.body === 'object' && actual.body !== null && 'headers' in actual.body) {
      ;(actual.body as { headers: Record<string, unknown> }).headers['x-forwarded-proto'] = 'http'
      ;(actual.body as { headers: Record<string, unknown> }).headers.host = (expected.body as { headers: Record<string, unknown> }).headers.host
      ;(actual.body as { headers: Record<string, unknown> }).headers['x-forwarded-host'] = (expected.body as { headers: Record<string, unknown> }).headers['x-forwarded-host']
    }
    t.same(actual, expected, `${c.name}: the same as over plain HTTP`)
    t.equal(upstream.seen.length - before, c.blocked === true ? 0 : 4, `${c.name}: the upstream saw ${c.blocked === true ? 'nothing' : 'each request'}`)
  }
})

t.test('the upstream gets HTTP/1.1 with Host from :authority, X-Forwarded-Proto https, and no pseudo-headers', async (t) => {
  const session = await h2Session(gw.url, ca.ca)
  t.teardown(() => { session.close() })
  const a = await sendH2(session, '/seen', { headers: { origin: APP } })
  const echo = JSON.parse(a.body) as { headers: Record<string, string>, httpVersion: string }
  const port = new URL(gw.url).port
  t.equal(echo.httpVersion, '1.1')
  t.equal(echo.headers['x-forwarded-proto'], 'https')
  t.equal(echo.headers['x-forwarded-host'], `127.0.0.1:${port}`)
  t.equal(echo.headers.origin, APP)
  t.same(Object.keys(echo.headers).filter((n) => n.startsWith(':')), [])
  const line = gw.logs.find((l) => l.msg === 'request' && l.path === '/seen')
  t.match(line, { httpVersion: '2.0', decision: 'allowed', status: 200 }, 'the log line says HTTP/2')
})

t.test('same-origin over HTTP/2: the Origin of the gateway itself (scheme https, host from :authority) is allowed', async (t) => {
  const session = await h2Session(gw.url, ca.ca)
  t.teardown(() => { session.close() })
  const self = gw.url.replace('127.0.0.1', '127.0.0.1')
  const a = await sendH2(session, '/self', { headers: { origin: self } })
  t.equal(a.status, 200)
  t.match(gw.logs.find((l) => l.msg === 'request' && l.path === '/self'), { reason: 'same_origin' })
})

t.test('Host and :authority naming different hosts is refused with 400', async (t) => {
  const session = await h2Session(gw.url, ca.ca)
  t.teardown(() => { session.close() })
  const before = upstream.seen.length
  const a = await sendH2(session, '/mixed', { headers: { ':authority': new URL(gw.url).host, host: 'other.example.com' } })
  t.equal(a.status, 400)
  t.match(JSON.parse(a.body), { code: 'CORSGATE_DUPLICATE_HOST' })
  t.equal(upstream.seen.length, before)
})

t.test('a body over bodyLimit is refused with 413 over HTTP/2 too', async (t) => {
  const small = await startTestGateway({ server: { tls: { certFile: ca.issue('small').certFile, keyFile: `${ca.dir}/small.key` }, bodyLimit: 1000 }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await small.close() })
  const session = await h2Session(small.url, ca.ca)
  t.teardown(() => { session.close() })
  const declared = await sendH2(session, '/big', { method: 'POST', headers: { origin: APP, 'content-length': '5000' }, body: 'x'.repeat(5000) })
  t.equal(declared.status, 413)
  t.equal(declared.headers['access-control-allow-origin'], APP)
  const streamed = await sendH2(session, '/big', { method: 'POST', headers: { origin: APP }, body: 'x'.repeat(5000) })
  t.equal(streamed.status, 413, 'a body without Content-Length is cut at the limit as well')
  // The session still serves.
  t.equal((await sendH2(session, '/after', { headers: { origin: APP } })).status, 200)
})

t.test('through Fastify (a plugin watching the route) over HTTP/2: hooks run, answers carry the CORS headers', async (t) => {
  const { certFile, keyFile } = ca.issue('plugin')
  const plugin = {
    name: 'test-plugin',
    plugin: async (app: { addHook: (name: string, fn: (...args: any[]) => unknown) => void }) => {
      app.addHook('onRequest', async (request: { url: string }, reply: { code: (n: number) => { send: (b: unknown) => void } }) => {
        if (request.url.startsWith('/secret')) reply.code(401).send({ error: 'unauthorized' })
      })
      app.addHook('onSend', async (_request: unknown, reply: { header: (n: string, v: string) => void }, payload: unknown) => {
        reply.header('x-plugin', 'seen')
        return payload
      })
    }
  }
  const viaFastify = await startTestGateway({ server: { tls: { certFile, keyFile } }, policies: { default: { origins: [APP] } }, routes: [{ path: '/', upstream: upstream.url }] }, {}, { plugins: [plugin as never] })
  t.teardown(async () => { await viaFastify.close() })
  const session = await h2Session(viaFastify.url, ca.ca)
  t.teardown(() => { session.close() })
  const ok = await sendH2(session, '/via-fastify', { headers: { origin: APP } })
  t.equal(ok.status, 200)
  t.equal(ok.headers['x-plugin'], 'seen', 'the plugin\'s onSend ran')
  t.equal(ok.headers['access-control-allow-origin'], APP)
  t.equal(ok.headers.vary, 'Accept-Encoding, Origin')
  t.notOk('access-control-allow-methods' in ok.headers, 'the upstream\'s CORS header is stripped')
  t.match(JSON.parse(ok.body), { url: '/via-fastify' })
  const post = await sendH2(session, '/via-fastify-post', { method: 'POST', headers: { origin: APP, 'content-type': 'application/json' }, body: '{"a":1}' })
  t.match(JSON.parse(post.body), { method: 'POST', bodyLength: 7 }, 'a body without Content-Length is forwarded through Fastify too')
  const refused = await sendH2(session, '/secret', { headers: { origin: APP } })
  t.equal(refused.status, 401)
  t.equal(refused.headers['access-control-allow-origin'], APP, 'the plugin\'s own answer carries the CORS headers')
  const denied = await sendH2(session, '/via-fastify', { headers: { origin: EVIL } })
  t.equal(denied.status, 403, 'a denied origin never reaches the plugin')
  t.notOk('x-plugin' in denied.headers)
  const h1 = await sendHttps(`${viaFastify.url}/via-fastify`, ca.ca, { headers: { origin: APP } })
  t.same(comparable(h1), comparable(ok), 'HTTP/1.1 over TLS gets the same answer')
})
