// Slow clients cost a one-request-at-a-time upstream nothing with the default config: 200 slow
// request bodies and 200 readers that never read are held open while a normal request from an
// allowed origin gets its answer from the upstream.
import { once } from 'node:events'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { hostPort } from '../helpers/raw-http.js'
import { waitFor } from '../helpers/redis-gateway.js'
import { startSerialUpstream } from '../helpers/serial-upstream.js'

const ORIGIN = 'https://app.example.com'

async function openConnections (gw: TestGateway, n: number, head: (i: number) => string): Promise<Socket[]> {
  const { host, port } = hostPort(gw.url)
  const sockets: Socket[] = []
  for (let i = 0; i < n; i++) {
    const socket = connect(port, host)
    socket.on('error', () => {})
    socket.write(head(i))
    sockets.push(socket)
  }
  await Promise.all(sockets.map(async (s) => { if (s.connecting) await once(s, 'connect') }))
  return sockets
}

async function connections (gw: TestGateway): Promise<number> {
  return await new Promise((resolve, reject) => gw.gateway.server.getConnections((err, n) => { if (err !== null) reject(err); else resolve(n) }))
}

t.test('200 slow request bodies: the upstream never sees them, a normal request is served', async (t) => {
  const upstream = await startSerialUpstream((_req, res) => { res.end('ok') })
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url }] })
  const sockets = await openConnections(gw, 200, (i) => `POST /upload/${i} HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nx`)
  t.teardown(async () => { for (const s of sockets) s.destroy(); await gw.close(); await upstream.close() })
  await waitFor(async () => await connections(gw) >= 200, 30_000, '200 slow uploads to be open')

  const res = await send(`${gw.url}/orders`, { headers: { origin: ORIGIN } })
  t.equal(res.status, 200, 'the normal request got its answer from the single-threaded upstream')
  t.equal(res.one('access-control-allow-origin'), ORIGIN)
  t.same(upstream.served.map((r) => r.url), ['/orders'], 'no slow upload reached the upstream')
  t.ok(await connections(gw) >= 200, 'while every slow upload was still open')
})

t.test('a reader that never reads a 64 MiB answer: the upstream sends it all and serves the next request', async (t) => {
  const big = Buffer.alloc(64 * 1024 * 1024, 'x')
  const upstream = await startSerialUpstream((req, res) => { res.end(req.url === '/big' ? big : 'ok') })
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const stuck = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    request(`${gw.url}/big`, { headers: { origin: ORIGIN }, agent: false }, resolve).on('error', reject).end()
  })
  stuck.pause()
  t.teardown(() => { stuck.destroy() })
  await waitFor(() => upstream.finished === 1, 30_000, 'the upstream to finish sending 64 MiB')
  t.pass('the upstream finished its answer while the client read nothing')
  const res = await send(`${gw.url}/next`, { headers: { origin: ORIGIN } })
  t.equal(res.status, 200, 'and served the next request')
  t.match(await (await fetch(`${gw.adminUrl}/metrics`)).text(), /corsgate_buffered_to_file_total\{direction="response"\} 1/, 'the answer went to a temporary file')
})

t.test('200 readers that never read a 2 MiB answer: a normal request is served', async (t) => {
  const big = Buffer.alloc(2 * 1024 * 1024, 'y')
  const upstream = await startSerialUpstream((req, res) => { res.end(req.url!.startsWith('/big') ? big : 'ok') })
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url }] })
  const sockets = await openConnections(gw, 200, (i) => `GET /big/${i} HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\n\r\n`)
  for (const s of sockets) s.pause()
  t.teardown(async () => { for (const s of sockets) s.destroy(); await gw.close(); await upstream.close() })
  await waitFor(() => upstream.finished >= 200, 60_000, 'the upstream to answer all 200')
  const res = await send(`${gw.url}/orders`, { headers: { origin: ORIGIN } })
  t.equal(res.status, 200)
  t.equal(upstream.served.at(-1)?.url, '/orders', 'served after all 200 slow readers had their answers sent')
})
