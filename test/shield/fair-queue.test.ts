// The wait for an upstream is shared fairly between client addresses: a flood from one
// address fills the queue without keeping other clients out of it, and a freed connection
// goes to the client that has used the upstream least (longest-queue drop; start-time fair
// queuing by upstream time, so clients with requests alike take turns).
import t, { type Test } from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send, type RawResponse } from '../helpers/http.js'
import { waitFor } from '../helpers/redis-gateway.js'
import { startSerialUpstream } from '../helpers/serial-upstream.js'
import { startUpstream } from '../helpers/upstream.js'
import { UpstreamGate, type Ticket } from '../../src/gateway/shield/upstream-gate.js'

const ORIGIN = 'https://app.example.com'

t.test('the gate: clients take turns, and a full queue drops the newest of the longest', async (t) => {
  const gate = new UpstreamGate(1, 4)
  const order: string[] = []
  const refused: string[] = []
  const ask = (client: string, id: string): string => gate.enter(() => client, () => { order.push(id) }, () => { refused.push(id) }).admitted
  t.equal(ask('a', 'a0'), 'now')
  t.same([ask('a', 'a1'), ask('a', 'a2'), ask('a', 'a3'), ask('a', 'a4')], ['queued', 'queued', 'queued', 'queued'])
  t.equal(ask('a', 'a5'), 'full', 'one client cannot push out its own requests')
  t.equal(ask('b', 'b0'), 'queued', 'another client gets in')
  t.same(refused, ['a4'], 'by pushing out the newest of the client with the most waiting')
  t.equal(ask('c', 'c0'), 'queued')
  t.same(refused, ['a4', 'a3'])
  t.equal(gate.pending, 4)
  for (let i = 0; i < 4; i++) gate.leave()
  t.same(order, ['a0', 'a1', 'b0', 'c0', 'a2'], 'a freed slot goes to the clients in turn')
  t.equal(gate.pending, 0)
  t.equal(gate.inFlight, 1)
  gate.leave()
  t.equal(gate.inFlight, 0)
})

t.test('the gate: among clients with one request waiting each, a newcomer is refused, not a waiter', async (t) => {
  const gate = new UpstreamGate(1, 2)
  const order: string[] = []
  const refused: string[] = []
  const ask = (client: string, id: string): string => gate.enter(() => client, () => { order.push(id) }, () => { refused.push(id) }).admitted
  t.equal(ask('a', 'a0'), 'now')
  t.same([ask('b', 'b1'), ask('c', 'c1')], ['queued', 'queued'])
  t.same([ask('d', 'd1'), ask('e', 'e1')], ['full', 'full'], 'no queue is longer than the newcomer\'s would be')
  t.same(refused, [], 'the requests that waited keep their places')
  gate.leave()
  gate.leave()
  t.same(order, ['a0', 'b1', 'c1'])
})

t.test('the gate: one client alone is served first come, first served; a cancelled wait frees its place', async (t) => {
  const gate = new UpstreamGate(1, 2)
  const order: string[] = []
  const enter = (id: string): { admitted: string, cancel: () => void } => gate.enter(() => 'a', () => { order.push(id) }, () => { t.fail(`${id} refused`) })
  enter('first')
  const second = enter('second')
  enter('third')
  second.cancel()
  t.equal(gate.pending, 1)
  t.equal(enter('fourth').admitted, 'queued', 'the cancelled place is free again')
  gate.leave()
  gate.leave()
  t.same(order, ['first', 'third', 'fourth'])
})

t.test('a flood from one address does not keep another client out of the upstream', async (t) => {
  const arrived: string[] = []
  const held: Array<() => void> = []
  let releasing = false
  const upstream = await startUpstream((req, res) => {
    arrived.push(req.url!)
    if (releasing) res.end('ok')
    else held.push(() => res.end('ok'))
  })
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url, upstreamConnections: 1, maxPending: 4 }] })
  t.teardown(async () => { releasing = true; for (const r of held.splice(0)) r(); await gw.close(); await upstream.close() })
  const flood = (path: string): Promise<RawResponse> => send(`${gw.url}${path}`, { headers: { origin: ORIGIN }, localAddress: '127.0.0.1' })
  const first = flood('/a0')
  await waitFor(() => held.length === 1, 10_000, 'the first request to reach the upstream')
  const queued = ['/a1', '/a2', '/a3', '/a4', '/a5'].map((path) => ({ path, answer: flood(path) }))
  const settled = new Set<string>()
  const nextSettled = async (): Promise<{ path: string, res: RawResponse }> => await Promise.race(queued.filter((q) => !settled.has(q.path)).map(async (q) => ({ path: q.path, res: await q.answer })))
  const full = await nextSettled()
  settled.add(full.path)
  t.equal(full.res.status, 503, 'the queue is full of the flood')
  const other = send(`${gw.url}/b0`, { headers: { origin: ORIGIN }, localAddress: '127.0.0.2' })
  const pushedOut = await nextSettled()
  settled.add(pushedOut.path)
  t.equal(pushedOut.res.status, 503, 'the flood gave up a place to the other client')
  t.match(pushedOut.res.json(), { code: 'CORSGATE_UPSTREAM_BUSY' })
  t.equal(pushedOut.res.one('access-control-allow-origin'), ORIGIN, 'with the CORS headers')
  releasing = true
  for (const r of held.splice(0)) r()
  const b = await other
  t.equal(b.status, 200, 'the other client is served')
  t.equal(b.one('access-control-allow-origin'), ORIGIN)
  t.equal((await first).status, 200)
  const statuses = (await Promise.all(queued.map(async (q) => (await q.answer).status))).sort()
  t.same(statuses, [200, 200, 200, 503, 503])
  t.equal(arrived.indexOf('/b0'), 2, 'after the one in flight and at most one more of the flood: its turn came next')
  t.equal(arrived.length, 5)
})

/**
 * A gate with one connection on a clock the test moves: `ask` queues request `id` of `client`
 * (`order` lists them as granted), `finish(ms)` ends the one in flight after `ms` of upstream time.
 */
function oneAtATime (t: Test): { order: string[], ask: (client: string, id: string) => void, finish: (ms: number) => void } {
  let now = 0
  const gate = new UpstreamGate(1, 100, undefined, () => now)
  const order: string[] = []
  const tickets = new Map<string, Ticket | undefined>()
  const ask = (client: string, id: string): void => { gate.enter(() => client, (ticket) => { order.push(id); tickets.set(id, ticket) }, () => { t.fail(`${id} refused`) }) }
  const finish = (ms: number): void => { now += ms; gate.leave(true, tickets.get(order.at(-1)!)) }
  return { order, ask, finish }
}

t.test('the gate: a client whose requests take the upstream 1 ms goes before one whose take 50 ms, however many it sends', async (t) => {
  const { order, ask, finish } = oneAtATime(t)
  for (let i = 0; i < 10; i++) ask('heavy', `h${i}`)
  finish(50)
  finish(50)
  for (let i = 0; i < 5; i++) ask('light', `l${i}`)
  finish(50)
  for (let i = 0; i < 5; i++) finish(order.at(-1)!.startsWith('l') ? 1 : 50)
  t.same(order, ['h0', 'h1', 'h2', 'l0', 'l1', 'l2', 'l3', 'l4', 'h3'], 'all five light requests went between two heavy ones (turns would have put a heavy one between each)')
  for (let i = 5; i < 8; i++) ask('light', `l${i}`)
  finish(50)
  t.equal(order.at(-1), 'l5', 'and a later light request goes first again')
})

t.test('the gate: a client idle for a while starts level with the others, not ahead by what it did not use', async (t) => {
  const { order, ask, finish } = oneAtATime(t)
  for (let i = 0; i < 30; i++) ask('a', `a${i}`)
  for (let i = 0; i < 20; i++) finish(10)
  // b arrives after a has used 200 ms: it is not owed 200 ms of turns.
  for (let i = 0; i < 6; i++) ask('b', `b${i}`)
  for (let i = 0; i < 6; i++) finish(10)
  const after = order.slice(21)
  t.same(after, ['b0', 'a21', 'b1', 'a22', 'b2', 'a23'], 'alike requests: the two take turns')
})

t.test('behind a flood of slow requests, a page\'s five quick ones are served before the flood\'s next', async (t) => {
  const upstream = await startSerialUpstream((req, res) => {
    if (req.url === '/heavy') setTimeout(() => res.end('heavy'), 30)
    else res.end('light')
  })
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url, upstreamConnections: 1 }], log: { level: 'warn' } })
  const state = { stopped: false }
  const flood = Array.from({ length: 10 }, async () => {
    while (!state.stopped) await send(`${gw.url}/heavy`, { headers: { origin: ORIGIN }, localAddress: '127.0.0.1' })
  })
  t.teardown(async () => { state.stopped = true; await Promise.all(flood); await gw.close(); await upstream.close() })
  await waitFor(() => upstream.served.length >= 20, 60_000, 'the flood to be under way')
  const before = upstream.served.length
  const page = await Promise.all(Array.from({ length: 5 }, async (_, i) => await send(`${gw.url}/light/${i}`, { headers: { origin: ORIGIN }, localAddress: '127.0.0.2' })))
  t.same(page.map((r) => r.status), [200, 200, 200, 200, 200])
  const since = upstream.served.slice(before)
  const lastLight = since.map((r) => r.url.startsWith('/light/')).lastIndexOf(true)
  const heavyBetween = since.slice(0, lastLight).filter((r) => r.url === '/heavy').length
  t.ok(heavyBetween <= 2, `${heavyBetween} flood requests were served before the page's last (the one in flight, and one more at most)`)
})
