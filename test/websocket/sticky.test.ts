// Several upstreams per route: spread, Socket.IO sessions sticky, refused upstreams ejected.
import t from 'tap'
import { io, type Socket } from 'socket.io-client'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { startSocketIoUpstream, type SocketIoUpstream } from '../helpers/socketio-upstream.js'

const ORIGIN = 'https://app.example.com'

async function connected (socket: Socket): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('connect_error', reject)
  })
}

/** Two Socket.IO upstreams behind one gateway route, all closed when the test ends. */
async function twoSocketIoUpstreams (t: { teardown: (fn: () => Promise<void>) => void }): Promise<{ a: SocketIoUpstream, b: SocketIoUpstream, gw: TestGateway }> {
  const a = await startSocketIoUpstream('a')
  const b = await startSocketIoUpstream('b')
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/socket.io/', upstreams: [a.url, b.url], websocket: true }]
  })
  t.teardown(async () => { await gw.close(); await a.close(); await b.close() })
  return { a, b, gw }
}

t.test('50 polling clients through two Socket.IO upstreams never hit "Session ID unknown"', async (t) => {
  const { a, b, gw } = await twoSocketIoUpstreams(t)

  // No cookies: stickiness must hold by sid alone (withCredentials off, as for most Node clients).
  const clients = Array.from({ length: 50 }, () => io(gw.url, { transports: ['polling'], extraHeaders: { origin: ORIGIN }, reconnection: false, forceNew: true }))
  t.teardown(() => { for (const c of clients) c.close() })
  await Promise.all(clients.map(connected))
  const served = await Promise.all(clients.map(async (c, i) => {
    const names = new Set<string>()
    for (let k = 0; k < 2; k++) {
      t.equal(await c.emitWithAck('echo', `${i}:${k}`), `${i}:${k}`)
      names.add((await c.emitWithAck('whoami') as { name: string }).name)
    }
    return names
  }))
  t.ok(served.every((names) => names.size === 1), 'every session stayed on one upstream')
  t.same([...a.errors, ...b.errors], [], 'no engine.io connection_error (Session ID unknown) on either upstream')
  t.equal(a.connections + b.connections, 50)
  t.ok(a.connections >= 20 && b.connections >= 20, `sessions were spread (${a.connections} / ${b.connections})`)
  t.ok(clients.every((c) => c.connected), 'every client is still connected')
  // Closed here, before the gateway: a pending long poll would hold its shutdown up to pingInterval.
  for (const c of clients) c.close()
  await Promise.all([a.idle(), b.idle()])
})

t.test('websocket-only and upgrading sessions spread and stay where they started', async (t) => {
  const { a, b, gw } = await twoSocketIoUpstreams(t)
  const clients = Array.from({ length: 10 }, (_, i) => io(gw.url, { transports: i % 2 === 0 ? ['websocket'] : ['polling', 'websocket'], extraHeaders: { origin: ORIGIN }, reconnection: false, forceNew: true }))
  t.teardown(() => { for (const c of clients) c.close() })
  await Promise.all(clients.map(connected))
  await Promise.all(clients.map(async (c) => {
    const engine = c.io.engine
    if (engine.transport.name !== 'websocket') await new Promise((resolve) => engine.once('upgrade', resolve))
  }))
  for (const c of clients) t.equal(await c.emitWithAck('echo', 'x'), 'x')
  t.same([...a.errors, ...b.errors], [])
  t.equal(a.upgrades.length + b.upgrades.length, 10, 'every websocket reached the upstream of its session')
  t.ok(a.connections > 0 && b.connections > 0, `spread (${a.connections} / ${b.connections})`)
  for (const c of clients) c.close()
  await Promise.all([a.idle(), b.idle()])
})

t.test('with cookies, the corsgate_upstream cookie pins a client whose sid this process does not know', async (t) => {
  const { gw } = await twoSocketIoUpstreams(t)
  const res = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: ORIGIN } })
  const cookies = res.headers.getSetCookie()
  const sticky = cookies.find((c) => c.startsWith('corsgate_upstream='))
  t.match(sticky, /^corsgate_upstream=[\w-]+; Path=\/socket\.io\/; HttpOnly; SameSite=Lax$/, 'over plain http: Lax, no Secure')
  t.ok(cookies.some((c) => c.startsWith('app_session=')), 'the upstream cookie is kept beside it')
  const sid = (JSON.parse((await res.text()).slice(1)) as { sid: string }).sid
  // Forget the session, as another replica or a restarted gateway would not know it.
  const route = gw.routes.routes[0]!
  ;(route.pool as unknown as { sessions: Map<string, unknown> }).sessions.clear()
  const pair = sticky!.split(';')[0]!
  for (let k = 0; k < 4; k++) {
    const poll = await fetch(`${gw.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', headers: { origin: ORIGIN, cookie: pair, 'content-type': 'text/plain' }, body: '40' })
    t.equal(poll.status, 200, `request ${k} found its session`)
  }
})

t.test('an upstream that refuses connections leaves the rotation, gets no traffic while ejected, and comes back after it', async (t) => {
  // The ejection outlasts the test: it ends only when the test says so (below), never by the
  // clock. That it ends after ejectionMs is tested on a fake clock in upstream-pool.test.ts.
  const ejectionMs = 600_000
  const a = await startUpstream()
  let b: Upstream = await startUpstream()
  const bPort = b.port
  const bUrl = b.url
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/', upstreams: [a.url, b.url], ejectionMs }]
  })
  t.teardown(async () => { await gw.close(); await a.close(); await b.close() })
  const pool = gw.routes.routes[0]!.pool
  t.equal(pool.upstreams[1], bUrl)

  for (let k = 0; k < 4; k++) t.equal((await fetch(`${gw.url}/r${k}`)).status, 200)
  t.equal(a.seen.length, 2, 'round robin: half to a')
  t.equal(b.seen.length, 2, 'round robin: half to b')

  await b.close()
  const statuses: number[] = []
  for (let k = 0; k < 10; k++) statuses.push((await fetch(`${gw.url}/down${k}`)).status)
  t.ok(statuses.filter((s) => s === 502).length <= 1, `at most the request that found b down failed (${statuses.join(',')})`)
  t.equal(statuses.at(-1), 200)
  t.notOk(pool.inRotation(1), 'b is out of the rotation')
  t.match(await (await fetch(gw.adminUrl + '/metrics')).text(), /corsgate_upstream_errors_total\{route="\/",kind="unavailable"\} 1/)

  // b answers again on its port, but is still ejected: it gets nothing.
  b = await startUpstream((_req, res) => res.end('back'), bPort)
  for (let k = 0; k < 6; k++) t.equal((await fetch(`${gw.url}/ejected${k}`)).status, 200)
  t.equal(b.seen.length, 0, 'no traffic to b while it is ejected, though it answers')

  // The ejection ends (as if it had begun ejectionMs ago): b is tried, and stays in rotation.
  pool.eject(1, Date.now() - ejectionMs - 60_000)
  t.ok(pool.inRotation(1))
  for (let k = 0; k < 4; k++) t.equal((await fetch(`${gw.url}/back${k}`)).status, 200)
  t.equal(b.seen.length, 2, 'b gets its share again')
  t.ok(pool.inRotation(1), 'and stays in rotation')
})

t.test('sticky: client-address — two gateways (workers or replicas) agree on every session without cookies or shared state', async (t) => {
  const a = await startSocketIoUpstream('a')
  const b = await startSocketIoUpstream('b')
  const config = (sticky: string): Parameters<typeof startTestGateway>[0] => ({
    server: { trustProxy: true },
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/socket.io/', upstreams: [a.url, b.url], websocket: true, sticky }]
  })
  const g1 = await startTestGateway(config('client-address'))
  const g2 = await startTestGateway(config('client-address'))
  const s1 = await startTestGateway(config('session'))
  const s2 = await startTestGateway(config('session'))
  t.teardown(async () => { for (const g of [g1, g2, s1, s2]) await g.close(); await a.close(); await b.close() })

  /** Handshake through one gateway, then a message and a poll through the other. */
  const session = async (first: string, second: string, address: string, poll = true): Promise<number[]> => {
    const headers = { origin: ORIGIN, 'x-forwarded-for': address }
    const hs = await fetch(`${first}/socket.io/?EIO=4&transport=polling`, { headers })
    const sid = (JSON.parse((await hs.text()).slice(1)) as { sid: string }).sid
    const post = await fetch(`${second}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', headers: { ...headers, 'content-type': 'text/plain' }, body: '40' })
    await post.arrayBuffer()
    // A poll on an upstream that has the session but never got its CONNECT would wait for the
    // next ping (pingInterval): only polled where the message went through.
    if (!poll || post.status !== 200) return [post.status]
    const res = await fetch(`${second}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { headers })
    await res.arrayBuffer()
    return [post.status, res.status]
  }
  const addresses = Array.from({ length: 20 }, (_, i) => `203.0.113.${i + 1}`)
  const byAddress = await Promise.all(addresses.map(async (ip) => await session(g1.url, g2.url, ip)))
  t.ok(byAddress.every((statuses) => statuses.length === 2 && statuses.every((s) => s === 200)), 'every session was found through the other gateway')
  t.same([...a.errors, ...b.errors], [])
  t.ok(a.engineConnections > 0 && b.engineConnections > 0, `addresses spread over both upstreams (${a.engineConnections} / ${b.engineConnections})`)

  // The default (sid learnt by one process) cannot do this: the other gateway guesses.
  const bySession = await Promise.all(addresses.map(async (ip) => await session(s1.url, s2.url, ip, false)))
  t.ok(bySession.some(([post]) => post === 400), 'with sticky: session, the second gateway misses some sessions')
  for (const c of [...a.io.sockets.sockets.values(), ...b.io.sockets.sockets.values()]) c.disconnect(true)
})
