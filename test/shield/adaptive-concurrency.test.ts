// The adaptive limit on what an upstream is sent at once: it falls when the upstream's latency
// shows a queue inside it, climbs back when the latency does, does not read a mix of fast and
// slow endpoints as a queue, and leaves long-polls out. Against a backend serving one request
// at a time, a flood from one address then waits in corsgate's fair queue instead of the
// backend's, so another client's request is served after a handful of the flood's, not after
// all of it.
import t, { type Test } from 'tap'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { waitFor } from '../helpers/redis-gateway.js'
import { startSerialUpstream, type SerialUpstream } from '../helpers/serial-upstream.js'
import { ConcurrencyLimit } from '../../src/gateway/shield/concurrency-limit.js'
import { UpstreamGate } from '../../src/gateway/shield/upstream-gate.js'

const ORIGIN = 'https://app.example.com'

/** A limit on a clock the test moves; `window(ms, alone)` is one 100 ms window of five such answers. */
function limitOnClock (max: number): { limit: ConcurrencyLimit, changes: number[], advance: (ms: number) => void, window: (ms: number, alone: boolean) => boolean } {
  let now = 0
  const changes: number[] = []
  const limit = new ConcurrencyLimit(max, (l) => changes.push(l), () => now)
  const window = (ms: number, alone: boolean): boolean => {
    now += 100
    let rose = false
    for (let i = 0; i < 5; i++) rose = limit.sample(ms, alone)
    return rose
  }
  return { limit, changes, advance: (ms) => { now += ms }, window }
}

t.test('the limit: falls while the upstream queues, climbs back when it does not', async (t) => {
  const { limit, changes, window } = limitOnClock(128)
  t.equal(limit.limit, 128, 'an upstream nobody measured has the whole pool')
  t.equal(window(900, false), false)
  t.equal(limit.limit, 128, 'no change without a baseline (no request sent alone yet)')
  window(10, true)
  t.equal(limit.limit, 128, 'answers as fast as the baseline keep it at the ceiling')
  for (let i = 0; i < 12; i++) window(200, false)
  t.ok(limit.limit >= 2 && limit.limit <= 6, `twenty times the baseline brings it down to a few (${limit.limit})`)
  t.same(changes, [...changes].sort((a, b) => b - a), 'falling all the way')
  let windows = 0
  let rose = false
  while (limit.limit < 128 && windows < 50) {
    if (window(10, false)) rose = true
    windows++
  }
  t.ok(rose, 'a rise is reported (waiting requests may go)')
  t.equal(limit.limit, 128, 'back at the ceiling')
  t.ok(windows <= 20, `climbing by its square root, within twenty windows (${windows})`)
})

t.test('the limit: a steady mix of fast and slow endpoints is not a queue', async (t) => {
  for (const slowShare of [0.3, 0.7]) {
    const { limit, changes, advance } = limitOnClock(64)
    let seed = 7
    const random = (): number => { seed = (seed * 48271) % 2147483647; return seed / 2147483647 }
    let atCeiling = 0
    for (let w = 0; w < 100; w++) {
      advance(100)
      // Sent alone or not, a request is as likely to be a slow one.
      for (let i = 0; i < 10; i++) limit.sample(random() < slowShare ? 800 : 4, random() < 0.2)
      if (limit.limit === 64) atCeiling++
    }
    // A window that happens to hold no fast answer reads as a queue for that window only.
    t.ok(atCeiling >= 80, `${slowShare * 100} % of answers taking 800 ms, the rest 4 ms: at the ceiling in ${atCeiling} of 100 windows`)
    t.ok(Math.min(64, ...changes) >= 32, `never below half of it (lowest: ${Math.min(64, ...changes)})`)
  }
})

t.test('the limit: a window closes after 100 ms and five answers, not before', async (t) => {
  const { limit, advance, window } = limitOnClock(32)
  window(10, true)
  advance(50)
  for (let i = 0; i < 20; i++) limit.sample(1000, false)
  t.equal(limit.limit, 32, 'nothing decided before 100 ms have passed')
  advance(50)
  limit.sample(1000, false)
  t.ok(limit.limit < 32, 'decided on the whole window when it closes')
  const after = limit.limit
  advance(500)
  for (let i = 0; i < 4; i++) limit.sample(1000, false)
  t.equal(limit.limit, after, 'nor on fewer than five answers')
})

t.test('the gate: counted requests wait at the adaptive limit, long-polls take from the pool only', async (t) => {
  let now = 0
  const adaptive = new ConcurrencyLimit(8, undefined, () => now)
  const gate = new UpstreamGate(8, 100, adaptive)
  // Teach it a baseline of 10 ms, then windows of 300 ms answers, until it holds a few.
  const window = (ms: number, alone: boolean): void => { now += 100; for (let i = 0; i < 5; i++) gate.sample(ms, alone) }
  window(10, true)
  for (let i = 0; i < 10; i++) window(300, false)
  const limit = gate.limit
  t.ok(limit >= 1 && limit <= 4, `the limit fell (${limit})`)
  const granted: string[] = []
  const ask = (id: string, counted = true): string => gate.enter(() => 'a', () => { granted.push(id) }, () => { t.fail(`${id} refused`) }, counted).admitted
  for (let i = 0; i < limit; i++) t.equal(ask(`c${i}`), 'now')
  t.equal(ask('waits'), 'queued', 'one more counted request waits')
  t.equal(gate.countedInFlight, limit)
  t.equal(ask('poll', false), 'now', 'a long-poll goes past a counted request held back by the limit: it needs only room in the pool')
  t.equal(gate.inFlight, limit + 1)
  t.equal(gate.countedInFlight, limit, 'and is not counted against the adaptive limit')
  gate.leave()
  t.equal(granted.at(-1), 'waits', 'the counted one goes when a counted one leaves')
  gate.leave(false)
  t.equal(gate.inFlight, limit)
  // A stream found out at its answer's head stops counting, and a waiting request goes.
  t.equal(ask('after stream'), 'queued')
  gate.uncount()
  t.equal(granted.at(-1), 'after stream', 'uncount lets the next counted request go')
  t.equal(gate.countedInFlight, limit)
  gate.leave(false)
  t.equal(ask('more'), 'queued')
  // Answers as fast as the baseline again: the limit climbs, and the waiter goes without a leave.
  for (let i = 0; i < 10 && gate.pending > 0; i++) window(10, false)
  t.equal(granted.at(-1), 'more', 'a limit that climbs lets waiting requests go')
  t.equal(gate.pending, 0)
})

t.test('the gate: with the pool full, a waiting long-poll of one client goes past another\'s counted request held back by the limit', async (t) => {
  let now = 0
  const gate = new UpstreamGate(8, 100, new ConcurrencyLimit(8, undefined, () => now))
  const window = (ms: number, alone: boolean): void => { now += 100; for (let i = 0; i < 5; i++) gate.sample(ms, alone) }
  window(10, true)
  for (let i = 0; i < 10; i++) window(300, false)
  const limit = gate.limit
  t.ok(limit < 8, `the limit fell below the pool (${limit})`)
  const granted: string[] = []
  const ask = (client: string, id: string, counted: boolean): string => gate.enter(() => client, () => { granted.push(id) }, () => { t.fail(`${id} refused`) }, counted).admitted
  for (let i = 0; i < limit; i++) ask('a', `c${i}`, true)
  for (let i = limit; i < 8; i++) t.equal(ask('b', `p${i}`, false), 'now', 'long-polls fill the rest of the pool')
  t.equal(ask('a', 'counted', true), 'queued')
  t.equal(ask('b', 'poll', false), 'queued', 'the pool is full')
  gate.leave(false)
  t.same(granted.at(-1), 'poll', 'a long-poll leaves: the waiting long-poll goes, the counted one still waits for the limit')
  t.equal(gate.pending, 1)
  gate.leave(true)
  t.equal(granted.at(-1), 'counted')
  t.equal(gate.pending, 0)
})

t.test('the limit: held down with nothing sent alone for 10 s, it sends one request at a time until one goes alone, and relearns the baseline', async (t) => {
  const { limit, window, advance } = limitOnClock(32)
  window(10, true)
  // The backend got slower for good: 60 ms an answer, with no queue in it.
  for (let i = 0; i < 20; i++) window(60, false)
  const held = limit.limit
  t.ok(held < 32, `read as a queue against the old baseline (${held})`)
  for (let i = 0; i < 120 && limit.limit !== 1; i++) window(60, false)
  t.equal(limit.limit, 1, 'a probe: one request at a time')
  t.ok(limit.sample(60, true), 'a request sent alone ends it, and the limit is back up')
  t.ok(limit.limit > 1)
  advance(1500)
  for (let i = 0; i < 3; i++) {
    // Probes every 10 s give alone samples; the one-minute-old baseline ages out.
    for (let w = 0; w < 100 && limit.limit !== 1; w++) window(60, false)
    limit.sample(60, true)
  }
  for (let w = 0; w < 400; w++) window(60, false)
  t.equal(limit.limit, 32, 'with the baseline relearnt at 60 ms, the ceiling again')
})

t.test('the limit: a probe that finds no request to send alone ends after a second', async (t) => {
  const { limit, window, advance } = limitOnClock(32)
  window(10, true)
  for (let i = 0; i < 120 && limit.limit !== 1; i++) window(300, false)
  t.equal(limit.limit, 1, 'probing')
  advance(1000)
  t.ok(limit.limit > 1, 'over after a second without a request alone')
})

/** `n` clients on `address` each sending one allowed GET after another until `stop()`. */
function flood (gw: TestGateway, address: string, n: number): { stop: () => Promise<void>, statuses: number[] } {
  const state = { stopped: false }
  const statuses: number[] = []
  const loops = Array.from({ length: n }, async () => {
    while (!state.stopped) statuses.push((await send(`${gw.url}/flood`, { headers: { origin: ORIGIN }, localAddress: address })).status)
  })
  return { statuses, stop: async () => { state.stopped = true; await Promise.all(loops) } }
}

/** How many flood requests the upstream served between a request from another address being sent and it being served. */
async function servedAhead (gw: TestGateway, upstream: SerialUpstream): Promise<number> {
  const before = upstream.served.length
  const res = await send(`${gw.url}/legit`, { headers: { origin: ORIGIN }, localAddress: '127.0.0.2' })
  if (res.status !== 200) throw new Error(`the other client got ${res.status}`)
  return upstream.served.findIndex((r) => r.url === '/legit') - before
}

async function concurrencyLimitMetric (gw: TestGateway, upstream: SerialUpstream): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`corsgate_upstream_concurrency_limit{route="/",upstream="${upstream.url}"}`))
  return Number(line?.split(' ').at(-1))
}

async function floodAgainst (t: Test, route: Record<string, unknown>): Promise<{ ahead: number, limitDuringFlood: number, overviewLimit: number, gw: TestGateway, upstream: SerialUpstream }> {
  // About 10 ms of work per request, one request at a time.
  const upstream = await startSerialUpstream((_req, res) => { setTimeout(() => res.end('ok'), 10) })
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url, ...route }], log: { level: 'warn' } })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  for (let i = 0; i < 5; i++) await send(`${gw.url}/warm-up`, { headers: { origin: ORIGIN } })
  const attack = flood(gw, '127.0.0.1', 40)
  try {
    // Well past the first burst of 40, which went to the upstream before anything was measured.
    await waitFor(() => upstream.served.length >= 200, 120_000, 'the flood to be under way')
    const ahead = await servedAhead(gw, upstream)
    const limitDuringFlood = await concurrencyLimitMetric(gw, upstream)
    const overview = (await send(`${gw.adminUrl}/overview`)).json() as { routes: Array<{ upstreams: Array<{ concurrencyLimit: number, connections: number }> }> }
    t.match(overview.routes[0]!.upstreams[0], { concurrencyLimit: Number, connections: 128 }, 'the admin overview shows the limit')
    return { ahead, limitDuringFlood, overviewLimit: overview.routes[0]!.upstreams[0]!.concurrencyLimit, gw, upstream }
  } finally {
    await attack.stop()
    t.same([...new Set(attack.statuses)], [200], 'every flood request was answered too')
  }
}

t.test('a flood in front of a one-at-a-time upstream: another client waits for a handful of its requests, not all', async (t) => {
  const { ahead, limitDuringFlood, overviewLimit, gw, upstream } = await floodAgainst(t, {})
  t.ok(overviewLimit < 128, `the overview shows the limit in force (${overviewLimit})`)
  t.ok(ahead <= 10, `the upstream served ${ahead} flood requests before the other client's (40 are outstanding)`)
  t.ok(limitDuringFlood <= 10, `corsgate_upstream_concurrency_limit fell from 128 to ${limitDuringFlood}`)
  let sent = 0
  while (await concurrencyLimitMetric(gw, upstream) < 128 && sent < 1000) {
    await send(`${gw.url}/after`, { headers: { origin: ORIGIN } })
    sent++
  }
  t.equal(await concurrencyLimitMetric(gw, upstream), 128, `back to the whole pool once the flood is over (${sent} requests later)`)
})

t.test('the same flood with adaptiveConcurrency: false: the other client waits behind the whole flood', async (t) => {
  const { ahead, limitDuringFlood, overviewLimit } = await floodAgainst(t, { adaptiveConcurrency: false })
  t.equal(overviewLimit, 128)
  t.ok(ahead >= 30, `the upstream served ${ahead} flood requests first: every one outstanding was already inside it`)
  t.equal(limitDuringFlood, 128)
})
