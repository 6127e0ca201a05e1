// Server limits are set on purpose and hold against the bytes an abusive client sends:
// header count and size, duplicate Host, a connection cap, slowloris headers, a slow body,
// and websockets exempt from the request timeout.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { parseConfig } from '../../src/config/load.js'
import { startTestGateway, testConfigYaml } from '../helpers/gateway.js'
import { headerValues, openSocket, readUntilClose, sendRaw } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'

t.test('the defaults are the documented ones, and reach the running server', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const server = gw.gateway.server
  t.equal(server.headersTimeout, 10_000, 'headers within 10 s')
  t.equal(server.requestTimeout, 60_000, 'whole request within 60 s')
  t.ok(server.keepAliveTimeout > 60_000, 'keep-alive above the 60 s idle timeout of AWS ALB and GCP LB, so the balancer closes first')
  t.equal(server.maxHeadersCount, 101, '100 header lines (one more read to detect the excess)')
  t.equal(server.maxConnections, 10_000)
  // Node exposes maxHeaderSize only on the parser, via the option given to createServer.
  const big = await sendRaw(gw.url, `GET / HTTP/1.1\r\nHost: gw\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`)
  t.equal(big.status, 431, 'a 17 KiB header block is over the 16 KiB default')
})

t.test('a header timeout longer than the request timeout is refused at load, naming the field', async (t) => {
  const yaml = testConfigYaml({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], server: { headersTimeoutMs: 70_000, requestTimeoutMs: 60_000 } })
  t.throws(() => parseConfig(yaml, 'limits.yaml'), /server\.headersTimeoutMs.*must not exceed server\.requestTimeoutMs/)
  const off = testConfigYaml({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], server: { headersTimeoutMs: 70_000, requestTimeoutMs: 0 } })
  t.doesNotThrow(() => parseConfig(off, 'limits.yaml'), 'requestTimeoutMs: 0 (off) takes any header timeout')
})

t.test('header count, header size and duplicate Host', async (t) => {
  let upstreamRequests = 0
  const upstream = await startUpstream()
  upstream.server.on('request', () => { upstreamRequests++ })
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/', upstream: upstream.url }],
    server: { maxHeadersCount: 20, maxHeaderSize: 4096 }
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const lines = (n: number): string => Array.from({ length: n }, (_, i) => `X-H${i}: ${i}\r\n`).join('')
  // Host + Origin + Connection + 17 = 20 lines: at the limit.
  const atLimit = await sendRaw(gw.url, `GET /a HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\nConnection: close\r\n${lines(17)}\r\n`)
  t.equal(atLimit.status, 200, '20 header lines are served')
  const over = await sendRaw(gw.url, `GET /b HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\nConnection: close\r\n${lines(18)}\r\n`)
  t.equal(over.status, 431, '21 header lines: 431')
  t.match(JSON.parse(over.body), { code: 'CORSGATE_TOO_MANY_HEADERS', statusCode: 431 })
  t.same(headerValues(over, 'access-control-allow-origin'), [], 'refused before the policy was consulted')
  // Node keeps the first 2000 lines by default and drops the rest without a word: an Origin
  // or Authorization past the limit would vanish. We refuse instead.
  const hidden = await sendRaw(gw.url, `GET /c HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n${lines(40)}Origin: https://evil.example\r\n\r\n`)
  t.equal(hidden.status, 431, 'a header hidden past the limit is not silently dropped')

  const large = await sendRaw(gw.url, `GET /d HTTP/1.1\r\nHost: gw\r\nCookie: ${'c'.repeat(5000)}\r\n\r\n`)
  t.equal(large.status, 431, 'a header block over maxHeaderSize: 431')

  const twoHosts = await sendRaw(gw.url, 'GET /e HTTP/1.1\r\nHost: gw\r\nHost: admin.internal\r\nConnection: close\r\n\r\n')
  t.equal(twoHosts.status, 400, 'two Host headers: 400 (RFC 9112 §3.2)')
  t.match(JSON.parse(twoHosts.body), { code: 'CORSGATE_DUPLICATE_HOST' })

  t.equal(upstreamRequests, 1, 'only the request within limits reached the upstream')
})

t.test('connection limit: connections over maxConnections are closed on accept', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ routes: [{ path: '/', upstream: upstream.url }], server: { maxConnections: 2 } })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const held = [await openSocket(gw.url), await openSocket(gw.url)]
  // Both held connections are accepted and usable.
  for (const s of held) s.write('GET /held HTTP/1.1\r\nHost: gw\r\n\r\n')
  await Promise.all(held.map(async (s) => await once(s, 'data')))

  const third = await openSocket(gw.url)
  const refused = readUntilClose(third)
  third.write('GET /third HTTP/1.1\r\nHost: gw\r\n\r\n')
  const res = await refused
  t.equal(res.status, 0, 'the third connection is closed without an answer')

  const closed = held.map(async (s) => await once(s, 'close'))
  for (const s of held) s.destroy()
  await Promise.all(closed)
  // The server counts a connection gone once its close has been processed; a request on a
  // fresh connection after that is served. Retry on the event loop, not on a timer.
  let status = 0
  for (let i = 0; i < 100 && status !== 200; i++) {
    status = (await sendRaw(gw.url, 'GET /after HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n')).status
  }
  t.equal(status, 200, 'once they close, new connections are served again')
  t.equal(upstream.seen.filter((r) => r.url === '/third').length, 0, 'the refused request never reached the upstream')
})

t.test('slowloris: headers dribbled a byte at a time are cut off, other clients are served', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/', upstream: upstream.url }],
    server: { headersTimeoutMs: 1000, requestTimeoutMs: 2000, connectionsCheckingIntervalMs: 100 }
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const attackers = await Promise.all(Array.from({ length: 5 }, async () => await openSocket(gw.url)))
  const head = `GET /slow HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\nX-Pad: ${'p'.repeat(200)}\r\n\r\n`
  let sentBytes = 0
  const results = attackers.map(async (socket) => {
    let i = 0
    // The attack itself: one byte every 50 ms, a header block that would take 12 s to finish.
    const drip = setInterval(() => { if (!socket.destroyed && i < head.length) { socket.write(head[i++]!); sentBytes++ } }, 50)
    const res = await readUntilClose(socket)
    clearInterval(drip)
    return { res, sent: i }
  })

  // While the attack runs, ordinary clients are served.
  for (let i = 0; i < 5; i++) {
    const ok = await fetch(`${gw.url}/normal/${i}`, { headers: { origin: ORIGIN } })
    t.equal(ok.status, 200, `ordinary request ${i} served during the attack`)
    await ok.arrayBuffer()
  }

  for (const { res, sent } of await Promise.all(results)) {
    t.equal(res.status, 408, 'the dribbling connection is answered 408 and closed')
    t.ok(sent < head.length, `cut off before its header block was complete (${sent} of ${head.length} bytes)`)
  }
  t.ok(sentBytes > 0)
  t.same(upstream.seen.filter((r) => r.url === '/slow'), [], 'no slow request reached the upstream')
})

t.test('a request body dribbled past requestTimeoutMs: 408, and the upstream request ends', async (t) => {
  let aborted = 0
  const upstream = await startUpstream()
  upstream.server.on('request', (req) => { req.on('close', () => { if (!req.complete) aborted++ }) })
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/', upstream: upstream.url }],
    server: { headersTimeoutMs: 500, requestTimeoutMs: 1000, connectionsCheckingIntervalMs: 100 }
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const socket = await openSocket(gw.url)
  const done = readUntilClose(socket)
  socket.write(`POST /upload HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n`)
  const drip = setInterval(() => { if (!socket.destroyed) socket.write('x') }, 50)
  const res = await done
  clearInterval(drip)
  t.equal(res.status, 408, 'the slow upload is answered 408')
  t.same(upstream.seen, [], 'the upstream never got a complete request')
  const ok = await fetch(`${gw.url}/after`, { headers: { origin: ORIGIN } })
  t.equal(ok.status, 200, 'and the gateway serves on')
  t.ok(aborted <= 1)
})

t.test('websockets are exempt from the request timeout', async (t) => {
  const http = createServer((_req, res) => { res.statusCode = 426; res.end() })
  const wss = new WebSocketServer({ server: http })
  wss.on('connection', (ws) => { ws.on('message', (data) => ws.send(data)) })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const wsUpstream = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/ws/', upstream: wsUpstream, websocket: true }, { path: '/', upstream: upstream.url }],
    server: { headersTimeoutMs: 500, requestTimeoutMs: 1000, connectionsCheckingIntervalMs: 100 }
  })
  t.teardown(async () => {
    await gw.close()
    await upstream.close()
    for (const c of wss.clients) c.terminate()
    wss.close()
    http.closeAllConnections()
    await new Promise<void>((resolve) => http.close(() => resolve()))
  })

  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/ws/chat`, { origin: ORIGIN })
  await once(ws, 'open')
  let closedEarly = false
  ws.on('close', () => { closedEarly = true })

  // A slow upload opened after the websocket is cut at requestTimeoutMs: when its 408 arrives,
  // the websocket has been open longer than the request timeout.
  const socket = await openSocket(gw.url)
  const done = readUntilClose(socket)
  socket.write(`POST /upload HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\nContent-Length: 1000\r\n\r\n`)
  const drip = setInterval(() => { if (!socket.destroyed) socket.write('x') }, 50)
  const res = await done
  clearInterval(drip)
  t.equal(res.status, 408, 'the request timeout fired for HTTP')

  t.notOk(closedEarly, 'the websocket is still open')
  ws.send('still here')
  const [echo] = await once(ws, 'message') as [Buffer]
  t.equal(echo.toString(), 'still here', 'and still carries messages')
  ws.close()
})
