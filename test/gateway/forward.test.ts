// Forwarding (src/gateway/forward.ts): which requests it takes and which corsgate answers itself,
// the headers that cross it both ways, flow control, aborting the upstream request when the
// client goes, 1xx and odd statuses.
import { request } from 'node:http'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send, type RawResponse } from '../helpers/http.js'
import { sendRaw } from '../helpers/raw-http.js'
import { startRawUpstream, startUpstream, type SeenRequest } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'

/** The `reqId` of the request log line for `path`: `direct-…` (served without Fastify's request objects) or Fastify's `req-…`. */
function reqIdOf (logs: Array<Record<string, unknown>>, path: string): string {
  const line = logs.find((l) => l.msg === 'request' && l.path === path)
  return String(line?.reqId)
}

/** A TCP upstream answering each connection's request with `answer`, then closing it. */
async function rawUpstream (answer: string): Promise<{ url: string, close: () => Promise<void> }> {
  return await startRawUpstream((socket) => { socket.end(answer) })
}

t.test('with no plugin, every allowed request is forwarded and every refusal answered without Fastify\'s request objects', async (t) => {
  const upstream = await startUpstream()
  const second = await startUpstream()
  const gw = await startTestGateway({
    server: { bodyLimit: 1024 },
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/socket.io/', upstreams: [upstream.url, second.url] }, { path: '/', upstream: upstream.url }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close(); await second.close() })

  for (const method of ['GET', 'HEAD', 'DELETE']) {
    const res = await send(`${gw.url}/${method.toLowerCase()}`, { method, headers: { origin: ORIGIN } })
    t.equal(res.status, 200, method)
  }
  // OPTIONS that is not a preflight (no Origin: a server's request).
  t.equal((await send(`${gw.url}/options`, { method: 'OPTIONS' })).status, 200, 'OPTIONS')
  await send(`${gw.url}/empty-post`, { method: 'POST', headers: { origin: ORIGIN, 'content-length': '0' } })
  await send(`${gw.url}/post`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'text/plain' }, body: 'hello' })
  await send(`${gw.url}/chunked`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'text/plain', 'transfer-encoding': 'chunked' }, body: 'hello' })
  const handshake = await send(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: ORIGIN } })
  for (const path of ['/get', '/head', '/delete', '/options', '/empty-post', '/post', '/chunked', '/socket.io/']) t.match(reqIdOf(gw.logs, path), /^direct-/, `${path}: forwarded`)
  t.match(handshake.one('set-cookie'), /^corsgate_upstream=/, 'a Socket.IO handshake on a balanced route pins the client to its upstream')
  t.equal(upstream.seen.find((r) => r.url === '/post')?.body.toString(), 'hello')
  t.equal(upstream.seen.find((r) => r.url === '/chunked')?.body.toString(), 'hello')

  t.equal((await send(`${gw.url}/too-big`, { method: 'POST', headers: { origin: ORIGIN }, body: Buffer.alloc(2048) })).status, 413)
  // Without Origin (a server's request): with one, the policy's method list refuses TRACE first.
  t.equal((await send(`${gw.url}/trace`, { method: 'TRACE' })).status, 404, 'a method corsgate does not proxy')
  t.equal((await send(`${gw.url}/%zz`, { headers: { origin: ORIGIN } })).status, 400, 'a path the router cannot decode')
  for (const path of ['/too-big', '/trace']) t.match(reqIdOf(gw.logs, path), /^direct-/, `${path}: answered by admission`)
  t.notOk(upstream.seen.some((r) => ['/too-big', '/trace', '/%zz'].includes(r.url)), 'none of those reached the upstream')
})

t.test('the headers that cross: hop-by-hop ones stop, repeated ones and latin1 bytes pass, a streamed body keeps its framing', async (t) => {
  // Headers that each need handling: the upstream's CORS headers, Vary, two Set-Cookies, a
  // header its Connection names, Keep-Alive, and a latin1 byte in a value.
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(201, [
      'Access-Control-Allow-Origin', '*', 'Access-Control-Max-Age', '99999', 'Vary', 'Accept-Encoding',
      'Set-Cookie', 'a=1; Path=/', 'Set-Cookie', 'b=2; Path=/', 'Connection', 'keep-alive, X-Hop', 'X-Hop', 'upstream-only',
      'Keep-Alive', 'timeout=5', 'X-Request-Id', 'abc', 'X-Latin', 'caf\u00e9', 'Content-Type', 'text/plain', 'Content-Length', '2'
    ])
    // A Buffer: with a string, Node writes head and body as one UTF-8 string, é included.
    res.end(Buffer.from('ok'))
  })
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN], exposeHeaders: ['X-Request-Id'], credentials: true } },
    routes: [{ path: '/', upstream: upstream.url, requestBuffering: false }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const clientHeaders = { origin: ORIGIN, cookie: 's=1', 'x-forwarded-for': '6.6.6.6', forwarded: 'for=6.6.6.6', 'keep-alive': '300', connection: 'keep-alive, X-Client-Hop', 'x-client-hop': 'x', 'content-type': 'text/plain' }
  const withLength = await send(`${gw.url}/same`, { method: 'PUT', headers: clientHeaders, body: 'body' })
  const chunked = await send(`${gw.url}/same`, { method: 'PUT', headers: { ...clientHeaders, 'transfer-encoding': 'chunked' }, body: 'body' })

  const comparable = (res: RawResponse): Record<string, string[]> => Object.fromEntries(Object.entries(res.headers).filter(([name]) => name !== 'date'))
  t.equal(withLength.status, 201)
  t.same(comparable(withLength), comparable(chunked), 'the same answer whatever the request framing')
  t.same(withLength.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/'])
  t.same(withLength.headers.vary, ['Accept-Encoding, Origin'])
  t.same(withLength.headers['access-control-allow-origin'], [ORIGIN])
  t.same(withLength.headers['access-control-expose-headers'], ['X-Request-Id'])
  t.equal(withLength.headers['access-control-max-age'], undefined)
  t.equal(withLength.headers['x-hop'], undefined, 'a header the upstream\'s Connection names stays behind')
  t.same(withLength.headers['keep-alive'], ['timeout=65'], 'Keep-Alive is corsgate\'s own, not the upstream\'s')
  t.same(withLength.headers['x-latin'], ['caf\u00e9'], 'a latin1 byte passes as that byte')

  const [a, b] = upstream.seen as [SeenRequest, SeenRequest]
  const sent = (r: SeenRequest): Record<string, unknown> => {
    const { 'content-length': _length, 'transfer-encoding': _te, ...rest } = r.headers
    return rest
  }
  t.same(sent(a), sent(b), 'the upstream sees the same headers but for the body\'s framing')
  t.equal(a.headers['content-length'], '4')
  t.equal(b.headers['transfer-encoding'], 'chunked')
  t.equal(a.body.toString(), 'body')
  t.equal(b.body.toString(), 'body')
  t.equal(a.headers['x-client-hop'], undefined, 'a header the client\'s Connection names stays behind')
  t.equal(a.headers['keep-alive'], undefined)
  t.equal(a.headers['x-forwarded-for'], '127.0.0.1')
  t.equal(a.headers.forwarded, undefined, 'a client\'s Forwarded is not passed on without trustProxy')
  t.equal(a.headers.host, new URL(gw.url).host, 'the client\'s Host passes (route hostHeader: client, the default)')
})

t.test('hop-by-hop request headers stop at corsgate instead of failing the request', async (t) => {
  // undici refuses Keep-Alive, Upgrade and Expect outright: each of these used to be a 502.
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const hops = 'Keep-Alive: timeout=300\r\nUpgrade: foo\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n'
  const get = await sendRaw(gw.url, `GET /hops HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\n${hops}Connection: close\r\n\r\n`)
  t.equal(get.status, 200, 'GET')
  // curl, Guzzle and .NET send `Expect: 100-continue` with uploads; Node answers the 100 itself.
  const upload = `Host: gw\r\nOrigin: ${ORIGIN}\r\n${hops}Expect: 100-continue\r\nConnection: close\r\n`
  const post = await sendRaw(gw.url, `POST /upload HTTP/1.1\r\n${upload}Content-Length: 5\r\n\r\nhello`)
  t.match(post.raw, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/, 'POST with a Content-Length body: 100, then 200')
  const chunked = await sendRaw(gw.url, `POST /chunked HTTP/1.1\r\n${upload}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`)
  t.match(chunked.raw, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/, 'chunked POST: 100, then 200')
  t.equal(upstream.seen.length, 3)
  for (const seen of upstream.seen) {
    for (const name of ['keep-alive', 'upgrade', 'te', 'proxy-connection', 'expect']) t.equal(seen.headers[name], undefined, `${seen.url}: no ${name}`)
  }
  t.equal(upstream.seen[1]?.body.toString(), 'hello')
  t.equal(upstream.seen[2]?.body.toString(), 'hello')
})

/** An upstream answering every request with `total` bytes, written as fast as its socket takes them; `written()` counts them. */
async function bigUpstream (total: number): Promise<Awaited<ReturnType<typeof startUpstream>> & { written: () => number }> {
  const chunk = Buffer.alloc(64 * 1024, 'x')
  let written = 0
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) })
    const more = (): void => {
      while (written < total) {
        written += chunk.length
        if (!res.write(chunk)) { res.once('drain', more); return }
      }
      res.end()
    }
    more()
  })
  return Object.assign(upstream, { written: () => written })
}

t.test('a large answer streams through whole', async (t) => {
  const total = 64 * 1024 * 1024
  const upstream = await bigUpstream(total)
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    request(`${gw.url}/big`, { headers: { origin: ORIGIN }, agent: false }, resolve).on('error', reject).end()
  })
  t.equal(res.statusCode, 200)
  let received = 0
  res.on('data', (c: Buffer) => { received += c.length })
  await new Promise((resolve) => res.once('end', resolve))
  t.equal(received, total, 'every byte arrives')
})

t.test('a client that hangs up aborts the upstream request', async (t) => {
  const upstream = await startUpstream(() => { /* never answers */ })
  // A route timeout far beyond the test's: only the abort can close the upstream request in time.
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url, timeoutMs: 600_000 }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const arrived = new Promise<import('node:http').ServerResponse>((resolve) => {
    upstream.server.once('request', (_req, res) => { resolve(res) })
  })
  const req = request(`${gw.url}/hang`, { headers: { origin: ORIGIN }, agent: false })
  req.on('error', () => {})
  req.end()
  const upstreamRes = await arrived
  const closed = new Promise<void>((resolve) => upstreamRes.once('close', () => resolve()))
  req.destroy()
  await closed
  t.notOk(upstreamRes.writableFinished, 'the upstream\'s connection was closed before it answered')
  // Logged in the same step that aborted the upstream request (forward.ts `finished`).
  t.match(gw.logs.find((l) => l.msg === 'request' && l.path === '/hang'), { status: 499 }, 'logged as 499: the client closed before any answer')
  t.same(gw.logs.filter((l) => (l.level as number) >= 50), [], 'no error logged')
})

t.test('1xx before the answer is not relayed; a status above 599 is a 502', async (t) => {
  const hints = await rawUpstream('HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  const odd = await rawUpstream('HTTP/1.1 700 Odd\r\nContent-Length: 2\r\n\r\nok')
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/hints', upstream: hints.url }, { path: '/odd', upstream: odd.url }]
  })
  t.teardown(async () => { await gw.close(); await hints.close(); await odd.close() })

  const early = await sendRaw(gw.url, `GET /hints HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\nConnection: close\r\n\r\n`)
  t.match(early.raw, /^HTTP\/1\.1 200 OK\r\n/, 'the final answer comes first')
  t.equal(early.body, 'ok')
  const res = await send(`${gw.url}/odd`, { headers: { origin: ORIGIN } })
  t.equal(res.status, 502)
  t.equal(res.one('access-control-allow-origin'), ORIGIN, 'with the CORS headers')
  t.match(res.json(), { code: 'CORSGATE_UPSTREAM_UNAVAILABLE' })
})

t.test('without response buffering, a client that stops reading holds the upstream back, then is cut after the route timeout with the upstream request', async (t) => {
  const total = 64 * 1024 * 1024
  const upstream = await bigUpstream(total)
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url, timeoutMs: 300, responseBuffering: false }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const upstreamClosed = new Promise<import('node:http').ServerResponse>((resolve) => {
    upstream.server.once('request', (_req, res) => { res.once('close', () => { resolve(res) }) })
  })
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    request(`${gw.url}/stuck`, { headers: { origin: ORIGIN }, agent: false }, resolve).on('error', reject).end()
  })
  res.pause()
  // Without flow control corsgate would read all 64 MiB off the upstream (and hold it) and the
  // upstream's response would finish; with it, the upstream is held at the socket buffers until
  // the route timeout cuts the client and aborts the upstream request.
  const upstreamRes = await upstreamClosed
  t.notOk(upstreamRes.writableFinished, 'the upstream request was aborted, not finished')
  t.ok(upstream.written() < total / 4, `the upstream got no further than the socket buffers allow (${(upstream.written() / 1048576).toFixed(1)} MiB of 64)`)
  t.ok(gw.logs.some((l) => l.msg === 'client stopped reading: response cut'), 'the cut is logged')
  // The client notices the cut once it reads again (what was buffered, then the close).
  const clientClosed = new Promise<void>((resolve) => { res.once('close', () => { resolve() }) })
  res.on('error', () => {})
  res.resume()
  await clientClosed
  t.notOk(res.complete, 'the client\'s response was cut, not completed')
})

t.test('an upstream announcing trailers: the answer still reaches HEAD and HTTP/1.0 clients', async (t) => {
  const upstream = await rawUpstream('HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: 1\r\n\r\n')
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const old = await sendRaw(gw.url, `GET /t HTTP/1.0\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\n\r\n`)
  t.equal(old.status, 200, 'HTTP/1.0')
  t.equal(old.body, 'ok')
  t.notOk(old.headers.some(([name]) => name === 'trailer'), 'no Trailer announced')
  const head = await sendRaw(gw.url, `HEAD /t HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\nConnection: close\r\n\r\n`)
  t.equal(head.status, 200, 'HEAD')
})
