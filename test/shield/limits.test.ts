// The bounds in front of an upstream: the queue per upstream (503 past maxPending, queued time
// counted against timeoutMs), per-client limits (429 past maxInFlight, connections closed past
// maxConnections), and the data-rate floors that cut slow clients.
import { once } from 'node:events'
import { request, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect } from 'node:net'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send, type RawResponse } from '../helpers/http.js'
import { hostPort } from '../helpers/raw-http.js'
import { waitFor } from '../helpers/redis-gateway.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'

/** An upstream that holds every request until `release()`; `arrived` counts those it holds. */
async function holdingUpstream (): Promise<{ url: string, held: () => number, release: () => void, close: () => Promise<void> }> {
  const waiting: ServerResponse[] = []
  let releasing = false
  const upstream = await startUpstream((_req, res) => { if (releasing) res.end('ok'); else waiting.push(res) })
  return {
    url: upstream.url,
    held: () => waiting.length,
    release: () => { releasing = true; for (const res of waiting.splice(0)) res.end('ok') },
    close: upstream.close
  }
}

async function metrics (adminUrl: string): Promise<string> {
  return await (await fetch(`${adminUrl}/metrics`)).text()
}

t.test('a full queue answers 503 at once, with the CORS headers', async (t) => {
  const up = await holdingUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: up.url, upstreamConnections: 1, maxPending: 1 }] })
  t.teardown(async () => { up.release(); await gw.close(); await up.close() })
  const first = send(`${gw.url}/1`, { headers: { origin: ORIGIN } })
  await waitFor(() => up.held() === 1, 10_000, 'the first request to reach the upstream')
  const [second, third] = [send(`${gw.url}/2`, { headers: { origin: ORIGIN } }), send(`${gw.url}/3`, { headers: { origin: ORIGIN } })]
  // One of the two waits for the connection, the other finds the queue full.
  const refused = await Promise.race([second, third])
  t.equal(refused.status, 503)
  t.match(refused.json(), { code: 'CORSGATE_UPSTREAM_BUSY' })
  t.equal(refused.one('access-control-allow-origin'), ORIGIN, 'readable by the page')
  t.equal(up.held(), 1, 'the upstream still has only the first')
  up.release()
  const statuses = (await Promise.all([first, second, third])).map((r: RawResponse) => r.status).sort()
  t.same(statuses, [200, 200, 503], 'the queued one was served once the connection was free')
  t.match(await metrics(gw.adminUrl), /corsgate_backend_protection_refusals_total\{route="\/",reason="queue_full"\} 1/)
})

t.test('time spent queued counts against the route timeout', async (t) => {
  const up = await holdingUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: up.url, upstreamConnections: 1, timeoutMs: 300 }] })
  t.teardown(async () => { up.release(); await gw.close(); await up.close() })
  const first = send(`${gw.url}/held`, { headers: { origin: ORIGIN } })
  await waitFor(() => up.held() === 1, 10_000, 'the first request to reach the upstream')
  const queued = await send(`${gw.url}/queued`, { headers: { origin: ORIGIN } })
  t.equal(queued.status, 504, 'never reached the upstream: its time ran out in the queue')
  t.equal(queued.one('access-control-allow-origin'), ORIGIN)
  t.equal(up.held(), 1)
  t.equal((await first).status, 504, 'the held one timed out at the upstream')
})

t.test('per client: requests in flight past the limit get 429; connections past the limit are closed', async (t) => {
  const up = await holdingUpstream()
  const gw = await startTestGateway({ server: { perClient: { maxInFlight: 2, maxConnections: 3 } }, policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: up.url }] })
  t.teardown(async () => { up.release(); await gw.close(); await up.close() })
  const held = [send(`${gw.url}/a`, { headers: { origin: ORIGIN } }), send(`${gw.url}/b`, { headers: { origin: ORIGIN } })]
  await waitFor(() => up.held() === 2, 10_000, 'two requests in flight')
  // Two connections are in use by the held requests: one more is allowed, a fourth is not.
  const third = await send(`${gw.url}/c`, { headers: { origin: ORIGIN } })
  t.equal(third.status, 429)
  t.match(third.json(), { code: 'CORSGATE_CLIENT_LIMIT' })
  t.equal(third.one('access-control-allow-origin'), ORIGIN)
  const { host, port } = hostPort(gw.url)
  const extra = [connect(port, host), connect(port, host)]
  for (const s of extra) s.on('error', () => {})
  await Promise.all(extra.map(async (s) => await once(s, 'close')).slice(1))
  t.ok(extra[1]!.destroyed, 'the fourth connection from this address was closed on accept')
  extra[0]!.destroy()
  up.release()
  t.same((await Promise.all(held)).map((r) => r.status), [200, 200])
  t.equal((await send(`${gw.url}/d`, { headers: { origin: ORIGIN } })).status, 200, 'under the limit again')
  const text = await metrics(gw.adminUrl)
  t.match(text, /reason="client_in_flight"\} 1/)
  t.match(text, /reason="client_connections"\} [1-9]/)
})

t.test('data-rate floors: a slow upload and a slow reader are cut, counted and logged', async (t) => {
  const big = Buffer.alloc(64 * 1024 * 1024, 'z')
  const upstream = await startUpstream((req, res) => { res.end(req.url === '/big' ? big : 'ok') })
  const gw = await startTestGateway({ server: { minDataRate: { bytesPerSecond: 100_000, graceMs: 300 } }, policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const { host, port } = hostPort(gw.url)
  const uploader = connect(port, host)
  uploader.on('error', () => {})
  uploader.write(`POST /upload HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\nContent-Length: 100000\r\n\r\nx`)
  let answer = ''
  uploader.on('data', (c: Buffer) => { answer += c.toString() })
  await once(uploader, 'close')
  t.match(answer, /^HTTP\/1\.1 408 /, 'the slow upload is answered 408 and closed')
  t.match(answer, /CORSGATE_SLOW_CLIENT/)
  t.notOk(upstream.seen.some((r) => r.url === '/upload'), 'it never reached the upstream')

  const reader = await new Promise<IncomingMessage>((resolve, reject) => {
    request(`${gw.url}/big`, { headers: { origin: ORIGIN }, agent: false }, resolve).on('error', reject).end()
  })
  reader.pause()
  reader.on('error', () => {})
  await waitFor(() => gw.logs.some((l) => l.msg === 'client read the answer too slowly: response cut'), 30_000, 'the slow reader to be cut')
  // Reading again, the client finds its answer cut short.
  reader.resume()
  await once(reader.socket, 'close')
  t.notOk(reader.complete, 'the reader that never reads is cut before the end')

  const text = await metrics(gw.adminUrl)
  t.match(text, /corsgate_slow_clients_cut_total\{direction="request"\} 1/)
  t.match(text, /corsgate_slow_clients_cut_total\{direction="response"\} 1/)
  t.ok(gw.logs.some((l) => l.msg === 'client sent its body too slowly: request cut'))
  t.ok(gw.logs.some((l) => l.msg === 'client read the answer too slowly: response cut'))
})
