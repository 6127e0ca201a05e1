// Socket.IO through the gateway with a real server and socket.io-client: both transports from an
// allowed origin with cookies, refusals that never reach the upstream, and sid hijacking.
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client'
import WebSocket from 'ws'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startSocketIoUpstream, type SocketIoUpstream } from '../helpers/socketio-upstream.js'

const ORIGIN = 'https://app.example.com'
const EVIL = 'https://evil.example'

async function setup (t: { teardown: (fn: () => Promise<void>) => void }): Promise<{ up: SocketIoUpstream, gw: TestGateway }> {
  const up = await startSocketIoUpstream()
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/socket.io/', upstream: up.url, websocket: true }]
  })
  t.teardown(async () => { await gw.close(); await up.close() })
  return { up, gw }
}

function client (url: string, opts: Partial<ManagerOptions & SocketOptions>): Socket {
  return io(url, { reconnection: false, forceNew: true, timeout: 5000, ...opts })
}

async function connected (socket: Socket): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('connect_error', reject)
  })
}

async function refused (socket: Socket): Promise<Error & { description?: unknown, context?: unknown }> {
  return await new Promise((resolve, reject) => {
    socket.once('connect', () => reject(new Error('connected, but should have been refused')))
    socket.once('connect_error', resolve)
  })
}

t.test('a polling handshake from an allowed origin gets the CORS treatment', async (t) => {
  const { gw } = await setup(t)
  // What a browser's XHR sees on the handshake.
  const res = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: ORIGIN } })
  t.equal(res.status, 200)
  t.equal(res.headers.get('access-control-allow-origin'), ORIGIN)
  t.equal(res.headers.get('access-control-allow-credentials'), 'true')
  t.match(res.headers.get('vary'), /Origin/)
  t.match(await res.text(), /^0\{"sid":"/)
})

t.test('polling only, from an allowed origin with credentials: CORS headers, and the upstream cookie comes back', async (t) => {
  const { up, gw } = await setup(t)
  const socket = client(gw.url, { transports: ['polling'], extraHeaders: { origin: ORIGIN }, withCredentials: true })
  t.teardown(() => { socket.close() })
  await connected(socket)
  t.equal(socket.io.engine.transport.name, 'polling')
  t.equal(await socket.emitWithAck('echo', 'over polling'), 'over polling')
  const who = await socket.emitWithAck('whoami') as { cookie: string | null, origin: string }
  t.equal(who.origin, ORIGIN, 'the upstream saw the Origin')
  const later = up.requests.filter((r) => r.url?.includes('sid=') === true)
  t.ok(later.length > 0)
  t.ok(later.every((r) => r.headers.cookie?.includes('app_session=from-upstream') === true), 'the cookie the upstream set comes back on every later request')
  t.ok(later.every((r) => r.headers.origin === ORIGIN && r.headers['x-forwarded-for'] === '127.0.0.1'))
  // Closed before the gateway, and the session gone upstream: a pending long poll would hold
  // the gateway's shutdown until the upstream's next ping (pingInterval).
  socket.close()
  await up.idle()
})

t.test('websocket only, from an allowed origin', async (t) => {
  const { up, gw } = await setup(t)
  const socket = client(gw.url, { transports: ['websocket'], extraHeaders: { origin: ORIGIN, cookie: 'app_session=from-browser' }, withCredentials: true })
  t.teardown(() => { socket.close() })
  await connected(socket)
  t.equal(socket.io.engine.transport.name, 'websocket')
  t.equal(await socket.emitWithAck('echo', 'over websocket'), 'over websocket')
  t.same(await socket.emitWithAck('echo', { nested: [1, 2, 3] }), { nested: [1, 2, 3] })
  t.equal(up.requests.length, 0, 'no polling at all')
  t.equal(up.upgrades.length, 1)
  t.equal(up.upgrades[0]!.headers.origin, ORIGIN)
  t.match(up.upgrades[0]!.headers.cookie, /app_session=from-browser/)
  t.match(gw.logs.filter((l) => l.kind === 'websocket'), [{ decision: 'allowed', status: 101, origin: ORIGIN, route: '/socket.io/' }])
})

t.test('polling then upgrade to websocket carries the cookie and the Origin on the upgrade', async (t) => {
  const { up, gw } = await setup(t)
  const socket = client(gw.url, { transports: ['polling', 'websocket'], extraHeaders: { origin: ORIGIN }, withCredentials: true })
  t.teardown(() => { socket.close() })
  await connected(socket)
  const engine = socket.io.engine
  if (engine.transport.name !== 'websocket') await new Promise((resolve) => engine.once('upgrade', resolve))
  t.equal(socket.io.engine.transport.name, 'websocket')
  t.equal(await socket.emitWithAck('echo', 'after upgrade'), 'after upgrade')
  t.equal(up.upgrades.length, 1)
  const upgrade = up.upgrades[0]!
  t.match(upgrade.url, /transport=websocket&sid=|sid=.*transport=websocket/)
  t.equal(upgrade.headers.origin, ORIGIN)
  t.match(upgrade.headers.cookie, /app_session=from-upstream/, 'the upstream cookie reached the upstream on the upgrade')
  t.equal(up.connections, 1)
})

t.test('a refused origin is refused on both transports and the upstream sees nothing', async (t) => {
  const { up, gw } = await setup(t)
  for (const transports of [['polling'], ['websocket'], ['polling', 'websocket']]) {
    const socket = client(gw.url, { transports, extraHeaders: { origin: EVIL }, withCredentials: true })
    const err = await refused(socket)
    t.ok(err instanceof Error, `${transports.join('+')}: connect_error`)
    socket.close()
  }
  t.equal(up.tcpConnections, 0, 'not even a TCP connection reached the upstream')
  t.equal(up.requests.length, 0, 'no HTTP request reached the upstream')
  t.equal(up.upgrades.length, 0, 'no upgrade reached the upstream')
  t.equal(up.engineConnections, 0)
  t.equal(up.connections, 0)
  const res = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: EVIL } })
  t.equal(res.status, 403)
  t.equal(res.headers.get('access-control-allow-origin'), null)
  t.same(await res.json(), { error: 'cors_denied', reason: 'origin_not_allowed' })
})

t.test('without Origin (a mobile app, a server) the default noOrigin: allow lets both transports in', async (t) => {
  const { up, gw } = await setup(t)
  for (const transports of [['polling'], ['websocket']]) {
    const socket = client(gw.url, { transports })
    await connected(socket)
    t.equal(await socket.emitWithAck('echo', transports[0]), transports[0])
    const who = await socket.emitWithAck('whoami') as { origin: string | null }
    t.equal(who.origin, null, 'no Origin was invented on the way')
    socket.close()
  }
  t.equal(up.connections, 2)
  await up.idle()
})

t.test('an upgrade carrying a sid obtained by an allowed origin is refused with a refused Origin', async (t) => {
  const { up, gw } = await setup(t)
  const handshake = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: ORIGIN } })
  const sid = (JSON.parse((await handshake.text()).slice(1)) as { sid: string }).sid
  t.equal(up.requests.length, 1, 'the upstream counts requests')
  const before = { requests: up.requests.length, upgrades: up.upgrades.length }

  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&sid=${sid}`, { headers: { origin: EVIL } })
  ws.on('error', () => {})
  const [, response] = await once(ws, 'unexpected-response') as [unknown, IncomingMessage]
  t.equal(response.statusCode, 403, 'the hijacking upgrade is refused on the handshake')
  ws.terminate()
  const poll = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { headers: { origin: EVIL } })
  t.equal(poll.status, 403, 'and so is a poll with that sid')
  t.same({ requests: up.requests.length, upgrades: up.upgrades.length }, before, 'neither reached the upstream')
  t.match(gw.logs.filter((l) => l.kind === 'websocket'), [{ decision: 'denied', status: 403, origin: EVIL }])
})
