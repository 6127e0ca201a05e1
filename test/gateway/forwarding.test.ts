import { request as httpRequest } from 'node:http'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('an allowed request is forwarded; the upstream CORS headers are replaced by ours', async (t) => {
  const upstream = await startUpstream((req, res) => {
    res.setHeader('access-control-allow-origin', '*')
    res.setHeader('access-control-allow-methods', 'DELETE')
    res.setHeader('access-control-max-age', '99999')
    res.setHeader('vary', 'Accept-Encoding')
    res.setHeader('x-request-id', 'abc')
    res.setHeader('x-internal', 'secret')
    res.end(JSON.stringify({ url: req.url, headers: req.headers }))
  })
  const gw = await startTestGateway({
    policies: { default: { origins: ['https://app.example.com'], exposeHeaders: ['X-Request-Id'] } },
    routes: [{ path: '/', upstream: upstream.url }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const res = await send(`${gw.url}/api/users?page=2`, { headers: { origin: 'https://app.example.com', cookie: 'session=1', authorization: 'Bearer x', 'x-forwarded-for': '6.6.6.6' } })
  t.equal(res.status, 200)
  t.equal(res.one('access-control-allow-origin'), 'https://app.example.com')
  t.equal(res.one('access-control-allow-credentials'), 'true')
  t.equal(res.one('access-control-expose-headers'), 'X-Request-Id')
  t.equal(res.one('access-control-allow-methods'), undefined, 'upstream Access-Control-* removed')
  t.equal(res.one('access-control-max-age'), undefined)
  t.equal(res.one('vary'), 'Accept-Encoding, Origin', 'Vary appended, not replaced')
  t.equal(res.one('x-request-id'), 'abc')

  const seen = res.json() as { url: string, headers: Record<string, string> }
  t.equal(seen.url, '/api/users?page=2', 'path and query unchanged')
  t.equal(seen.headers.origin, 'https://app.example.com', 'Origin passes unchanged')
  t.equal(seen.headers.cookie, 'session=1')
  t.equal(seen.headers.authorization, 'Bearer x')
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'client-sent X-Forwarded-For is not trusted without trustProxy')
  t.equal(seen.headers['x-forwarded-proto'], 'http')
  t.equal(seen.headers['x-forwarded-host'], new URL(gw.url).host)
})

t.test('with trustProxy, X-Forwarded-For is appended and the forwarded host decides same-origin', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    server: { trustProxy: true },
    policies: { default: { origins: ['https://app.example.com'] } },
    routes: [{ path: '/', upstream: upstream.url }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/x`, { headers: { origin: 'https://api.example.net', 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.net', forwarded: 'for=203.0.113.9;proto=https' } })
  t.equal(res.status, 200, 'same-origin through the trusted proxy')
  const seen = res.json() as { headers: Record<string, string> }
  t.equal(seen.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1')
  t.equal(seen.headers['x-forwarded-proto'], 'https')
  t.equal(seen.headers['x-forwarded-host'], 'api.example.net')
  t.equal(seen.headers.forwarded, 'for=203.0.113.9;proto=https', 'a trusted proxy\'s Forwarded passes too')
})

t.test('without trustProxy, X-Forwarded-Host cannot make an origin same-origin', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/x`, { headers: { origin: 'https://evil.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example' } })
  t.equal(res.status, 403)
  t.equal(upstream.seen.length, 0)
})

t.test('same-origin requests are allowed without being listed', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: [] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/x`, { headers: { origin: gw.url } })
  t.equal(res.status, 200)
  t.equal(gw.logs.find((l) => l.msg === 'request')?.decision, 'same_origin')
})

t.test('with requestBuffering off, request bodies are streamed to the upstream, both with Content-Length and chunked', async (t) => {
  const upstream = await startUpstream((req, res, body) => {
    res.end(JSON.stringify({ length: body.length, te: req.headers['transfer-encoding'] ?? null, type: req.headers['content-type'] }))
  })
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url, requestBuffering: false }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const big = Buffer.alloc(3 * 1024 * 1024, 'a')
  const res = await send(`${gw.url}/upload`, { method: 'POST', headers: { origin: 'https://app.example.com', 'content-type': 'application/json', 'content-length': String(big.length) }, body: big })
  t.same(res.json(), { length: big.length, te: null, type: 'application/json' })

  // Chunked: the gateway must pass chunks along before the request ends (streamed, not buffered).
  const firstChunkSeen = new Promise<void>((resolve) => upstream.server.once('request', (req) => req.once('data', () => resolve())))
  const chunked = await new Promise<string>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/upload`, { method: 'POST', headers: { origin: 'https://app.example.com', 'content-type': 'text/plain' } }, (r) => {
      let body = ''
      r.on('data', (c: Buffer) => { body += c.toString() })
      r.on('end', () => resolve(body))
    })
    req.on('error', reject)
    req.write('first chunk,')
    firstChunkSeen.then(() => req.end('second chunk'), reject)
  })
  t.same(JSON.parse(chunked), { length: 'first chunk,second chunk'.length, te: 'chunked', type: 'text/plain' })
})

t.test('requests without Origin follow noOrigin', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    policies: { open: { origins: ['https://app.example.com'] }, strict: { origins: ['https://app.example.com'], noOrigin: 'deny' } },
    routes: [{ path: '/', upstream: upstream.url, policy: 'open' }, { path: '/browser-only', upstream: upstream.url, policy: 'strict' }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const allowed = await send(`${gw.url}/x`)
  t.equal(allowed.status, 200, 'curl, mobile apps, servers')
  t.equal(allowed.one('access-control-allow-origin'), undefined, 'no CORS headers without an Origin')
  t.equal(allowed.one('vary'), 'Origin', 'but Vary: Origin, for shared caches')
  const denied = await send(`${gw.url}/browser-only/x`)
  t.equal(denied.status, 403)
  t.same(denied.json(), { error: 'cors_denied', reason: 'no_origin_denied' })
  t.equal(upstream.seen.length, 1)
})

t.test('a * policy sends * and no Vary: Origin', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['*'], credentials: false } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/x`, { headers: { origin: 'https://anyone.example' } })
  t.equal(res.one('access-control-allow-origin'), '*')
  t.equal(res.one('access-control-allow-credentials'), undefined)
  t.equal(res.one('vary'), undefined)
})

t.test('an upstream 503 (Laravel maintenance mode) passes through once, never retried', async (t) => {
  const upstream = await startUpstream((_req, res) => { res.statusCode = 503; res.setHeader('retry-after', '1'); res.end('{"message":"maintenance"}') })
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/x`, { headers: { origin: 'https://app.example.com' } })
  t.equal(res.status, 503)
  t.equal(res.body, '{"message":"maintenance"}')
  t.equal(res.one('access-control-allow-origin'), 'https://app.example.com')
  t.equal(upstream.seen.length, 1, 'the upstream was asked exactly once')
})
