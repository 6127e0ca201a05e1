// Responses corsgate makes itself carry CORS headers for an allowed origin, so the browser
// shows the real error instead of a CORS error.
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { GatewayMetrics } from '../../src/admin/metrics.js'
import { parseConfig } from '../../src/config/load.js'
import { buildGateway } from '../../src/gateway/app.js'
import { RouteTable } from '../../src/gateway/route-table.js'
import { PolicyStore } from '../../src/sources/policy-store.js'
import { startTestGateway, testConfigYaml } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { deadPort, startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'
const policies = { default: { origins: [ORIGIN] } }

function assertCorsError (t: Test, res: Awaited<ReturnType<typeof send>>, status: number, code: string): void {
  t.equal(res.status, status)
  t.match(res.json(), { statusCode: status, code })
  t.equal(res.one('access-control-allow-origin'), ORIGIN, `${status} carries CORS headers`)
  t.equal(res.one('access-control-allow-credentials'), 'true')
  t.match(res.one('vary'), /Origin/)
}

t.test('502 when the upstream is down', async (t) => {
  const port = await deadPort()
  const gw = await startTestGateway({ policies, routes: [{ path: '/', upstream: `http://127.0.0.1:${port}` }] })
  t.teardown(async () => { await gw.close() })
  assertCorsError(t, await send(`${gw.url}/x`, { headers: { origin: ORIGIN } }), 502, 'CORSGATE_UPSTREAM_UNAVAILABLE')
  const denied = await send(`${gw.url}/x`, { headers: { origin: 'https://evil.example' } })
  t.equal(denied.status, 403, 'a refused origin still gets its 403, not the upstream error')
  t.equal(denied.one('access-control-allow-origin'), undefined)
})

t.test('504 when the upstream stalls past the route timeout', async (t) => {
  const stalled: Array<() => void> = []
  const upstream = await startUpstream((_req, res) => { stalled.push(() => res.end()) })
  const gw = await startTestGateway({ policies, routes: [{ path: '/', upstream: upstream.url, timeoutMs: 200 }] })
  t.teardown(async () => { for (const f of stalled) f(); await gw.close(); await upstream.close() })
  assertCorsError(t, await send(`${gw.url}/slow`, { headers: { origin: ORIGIN } }), 504, 'CORSGATE_UPSTREAM_TIMEOUT')
})

t.test('404 when no route serves the host and path', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies, routes: [{ path: '/api', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  assertCorsError(t, await send(`${gw.url}/other`, { headers: { origin: ORIGIN } }), 404, 'CORSGATE_NO_ROUTE')
  t.equal(upstream.seen.length, 0)
})

t.test('413 for a body over the limit, by Content-Length and by counting a chunked body', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ server: { bodyLimit: 1024 }, policies, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  assertCorsError(t, await send(`${gw.url}/x`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'text/plain' }, body: Buffer.alloc(2048, 'a') }), 413, 'CORSGATE_PAYLOAD_TOO_LARGE')
  t.equal(upstream.seen.length, 0, 'a declared oversize body is refused before the upstream')

  const chunked = await new Promise<{ status: number, body: string, acao: string | undefined }>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/x`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/octet-stream' } }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, acao: res.headers['access-control-allow-origin'] as string | undefined }))
    })
    req.on('error', reject)
    for (let i = 0; i < 8; i++) req.write(Buffer.alloc(512, 'b'))
    req.end()
  })
  t.equal(chunked.status, 413)
  t.equal(chunked.acao, ORIGIN)
  t.match(JSON.parse(chunked.body), { code: 'CORSGATE_PAYLOAD_TOO_LARGE' })
})

t.test('400 for paths that would resolve elsewhere upstream', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  for (const path of ['/a/../b', '/a/./b', '/a/%2e%2e/b', '/a%2fb', '/a%5cb']) {
    const res = await send(`${gw.url}${path}`, { headers: { origin: ORIGIN } })
    t.equal(res.status, 400, path)
  }
  t.equal(upstream.seen.length, 0)
})

t.test('shutdown drains: the in-flight request finishes, its connection is not kept alive', async (t) => {
  let release: () => void = () => {}
  let arrived: () => void = () => {}
  const slowArrived = new Promise<void>((resolve) => { arrived = resolve })
  const upstream = await startUpstream((_req, res) => { release = () => res.end('done'); arrived() })
  const gw = await startTestGateway({ policies, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await upstream.close() })

  const { port } = new URL(gw.url)
  const socket = connect(Number(port), '127.0.0.1')
  let data = ''
  socket.on('data', (c: Buffer) => { data += c.toString() })
  const socketClosed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.write(`GET /slow HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\n\r\n`)
  await slowArrived
  const closing = gw.close()
  release()
  await closing
  await socketClosed
  t.match(data, /^HTTP\/1\.1 200 [^]*connection: close[^]*\r\n\r\ndone$/i, 'answered in full, then the connection closed')
})

t.test('503 with CORS headers for a request that arrives while shutting down', async (t) => {
  const upstream = await startUpstream()
  const loaded = parseConfig(testConfigYaml({ policies, routes: [{ path: '/', upstream: upstream.url }] }), 'test.yaml')
  const app = await buildGateway({
    config: loaded.config,
    store: new PolicyStore(loaded),
    routes: new RouteTable(loaded.config.routes),
    metrics: new GatewayMetrics({ defaultMetrics: false }),
    logger: pino({ level: 'silent' }),
    isClosing: () => true
  })
  t.teardown(async () => { await app.close(); await upstream.close() })
  const res = await app.inject({ method: 'GET', url: '/x', headers: { origin: ORIGIN } })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['access-control-allow-origin'], ORIGIN)
  t.equal(res.headers.connection, 'close')
  t.match(res.json(), { error: 'service_unavailable', statusCode: 503, code: 'CORSGATE_SHUTTING_DOWN' })
  t.equal(upstream.seen.length, 0)
})

t.test('a request still open at the drain deadline is cut, so shutdown ends cleanly', async (t) => {
  let arrived: () => void = () => {}
  const slowArrived = new Promise<void>((resolve) => { arrived = resolve })
  const held: Array<() => void> = []
  // Like a Socket.IO long-poll: the upstream answers only much later.
  const upstream = await startUpstream((_req, res) => { held.push(() => res.end()); arrived() })
  const gw = await startTestGateway({ server: { shutdownGraceMs: 500 }, policies, routes: [{ path: '/', upstream: upstream.url, timeoutMs: 600_000 }] })
  t.teardown(async () => { for (const f of held) f(); await upstream.close() })

  const response = send(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: ORIGIN } }).then(() => 'answered', () => 'cut')
  await slowArrived
  await gw.close()
  t.equal(held.length, 1, 'the upstream had not answered when close() returned')
  t.equal(await response, 'cut', 'the open request was cut at the deadline')
  t.ok(gw.logs.some((l) => l.msg === 'drain deadline reached: closing the connections still open'))
})
