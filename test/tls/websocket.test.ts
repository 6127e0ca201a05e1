// WebSockets on the TLS port: `wss://` upgrades come over HTTP/1.1 (ALPN falls back for
// them) and are judged as on plain HTTP; Socket.IO's polling transport runs over HTTP/2.
import { once } from 'node:events'
import t from 'tap'
import { fetch as undiciFetch, type Agent } from 'undici'
import WebSocket from 'ws'
import { Fetch } from 'engine.io-client'
import { io } from 'socket.io-client'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startSocketIoUpstream, type SocketIoUpstream } from '../helpers/socketio-upstream.js'
import { makeTestCa, undiciH2Agent, type TestCa } from '../helpers/tls.js'
import { startWsEcho, type WsUpstream } from '../helpers/ws-upstream.js'

const APP = 'https://app.example.com'

let ca: TestCa
let ws: WsUpstream
let sio: SocketIoUpstream
let gw: TestGateway
t.before(async () => {
  ca = makeTestCa()
  const { certFile, keyFile } = ca.issue('server')
  ws = await startWsEcho()
  sio = await startSocketIoUpstream()
  gw = await startTestGateway({
    server: { tls: { certFile, keyFile } },
    policies: { default: { origins: [APP] } },
    routes: [{ path: '/socket.io/', upstream: sio.url, websocket: true }, { path: '/ws/', upstream: ws.url, websocket: true }]
  })
})
t.teardown(async () => {
  await gw.close()
  await ws.close()
  await sio.close()
  ca.remove()
})

const wssUrl = (path: string): string => gw.url.replace('https://', 'wss://') + path

t.test('wss:// from an allowed origin is tunnelled over HTTP/1.1 on the TLS port', async (t) => {
  const client = new WebSocket(wssUrl('/ws/echo'), { ca: ca.ca, origin: APP })
  await once(client, 'open')
  client.send('over tls')
  const [data] = await once(client, 'message') as [Buffer]
  t.equal(data.toString(), 'over tls')
  const seen = ws.upgrades.at(-1)!
  t.equal(seen.headers.origin, APP)
  t.equal(seen.headers['x-forwarded-proto'], 'https', 'the upstream is told the client used TLS')
  client.close()
  await once(client, 'close')
  t.match(gw.logs.find((l) => l.msg === 'request' && l.kind === 'websocket' && l.decision === 'allowed'), { httpVersion: '1.1', status: 101 })
})

t.test('wss:// from a refused origin is 403 on the handshake; the upstream never sees it', async (t) => {
  const before = ws.upgrades.length
  const client = new WebSocket(wssUrl('/ws/echo'), { ca: ca.ca, origin: 'https://evil.example.org' })
  const [, res] = await once(client, 'unexpected-response') as [unknown, { statusCode: number, headers: Record<string, string> }]
  t.equal(res.statusCode, 403)
  t.notOk('access-control-allow-origin' in res.headers)
  client.on('error', () => {})
  client.terminate()
  t.equal(ws.upgrades.length, before)
})

t.test('Socket.IO long-polling over HTTP/2', async (t) => {
  const agent: Agent = undiciH2Agent(ca.ca)
  // engine.io's fetch transport uses the global fetch: here undici's, negotiating h2.
  const originalFetch = globalThis.fetch
  globalThis.fetch = (async (input: string, init: Record<string, unknown>) => await undiciFetch(input, { ...init, dispatcher: agent })) as unknown as typeof fetch
  t.teardown(async () => { globalThis.fetch = originalFetch; await agent.close() })

  const before = gw.logs.length
  const socket = io(gw.url, { transports: [Fetch], extraHeaders: { origin: APP }, reconnection: false, forceNew: true, timeout: 5000 })
  t.teardown(() => { socket.close() })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('connect_error', reject) })
  t.equal(socket.io.engine.transport.name, 'polling')
  t.equal(await socket.emitWithAck('echo', 'over h2 polling'), 'over h2 polling')
  const lines = gw.logs.slice(before).filter((l) => l.msg === 'request' && typeof l.path === 'string' && l.path.startsWith('/socket.io/'))
  t.ok(lines.length >= 2, 'polling requests were logged')
  t.ok(lines.every((l) => l.httpVersion === '2.0' && l.decision === 'allowed'), 'every polling request went over HTTP/2 and was allowed')
  socket.close()

  const refused = io(gw.url, { transports: [Fetch], extraHeaders: { origin: 'https://evil.example.org' }, reconnection: false, forceNew: true, timeout: 5000 })
  t.teardown(() => { refused.close() })
  const err = await new Promise<Error>((resolve) => { refused.once('connect_error', resolve) })
  t.ok(err, 'a refused origin does not connect')
  t.match(gw.logs.find((l) => l.msg === 'request' && l.origin === 'https://evil.example.org' && l.kind === 'actual'), { httpVersion: '2.0', status: 403 })
})
