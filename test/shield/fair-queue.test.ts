// The wait for an upstream is shared fairly between client addresses: a flood from one
// address fills the queue without keeping other clients out of it, and a freed connection
// goes to the clients in turn (longest-queue drop, round-robin turns).
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send, type RawResponse } from '../helpers/http.js'
import { waitFor } from '../helpers/redis-gateway.js'
import { startUpstream } from '../helpers/upstream.js'
import { UpstreamGate } from '../../src/gateway/shield/upstream-gate.js'

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
