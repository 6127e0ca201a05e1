// A bound on what one upstream is asked at once (Envoy's circuit breakers: `max_connections`,
// `max_pending_requests`): at most `connections` requests in flight, at most `maxPending`
// waiting for one of them; past that the request is refused at once rather than queued
// without end in front of a backend that cannot keep up.
//
// The wait is fair between clients by the upstream time each one uses (start-time fair
// queuing, as a router shares a link by bytes rather than packets): each client address has
// its own queue and a virtual finish time, the upstream time its requests have taken so far
// (charged when one is granted at that client's usual cost, corrected when it is done to the
// time it was in flight less any time it waited inside the upstream behind others); a freed
// slot goes to the waiting client that is furthest behind. A client sending requests that take
// the backend 50 ms each therefore goes after one whose requests take 1 ms, however many it
// sends, and clients with requests alike take turns. A client that was idle starts level with
// the others, not ahead by what it did not use. When the queue is full, the client with the
// most requests waiting gives up its newest one if that still leaves it more than the
// newcomer's client (longest-queue drop); otherwise the newcomer is refused. So a flood from
// one address fills the queue without keeping other clients out of it. Behind a proxy that
// hides client addresses (no `trustProxy`) every request has one address, and this is a plain
// first-come queue.
//
// Below `connections`, an adaptive limit (concurrency-limit.ts) may hold requests back sooner,
// at what the upstream serves at once, so that the queue is this fair one rather than the
// backend's own. Requests not `counted` (long-polls, event streams) take from `connections`
// only, and go past counted requests held back by that limit; in the fair queue they are
// charged their client's usual cost, not the time they wait for news.
import type { ConcurrencyLimit } from './concurrency-limit.js'

export type Admitted = 'now' | 'queued' | 'full'

interface Waiter {
  readonly client: Client
  readonly counted: boolean
  readonly grant: (ticket: Ticket) => void
  readonly refuse: () => void
}

/** A client address with requests waiting or granted from the queue and not done yet. */
interface Client {
  readonly key: string
  readonly waiters: Waiter[]
  /** Upstream time charged to it so far, on the gate's virtual clock (ms). */
  finish: number
  /** Its usual time at the upstream (ms): what a granted request is charged until it is done. */
  cost: number
  /** Its requests granted from the queue and not done yet. */
  granted: number
}

/** What a request granted from the queue hands back to `leave`, so its real cost is charged. */
export interface Ticket {
  readonly client: Client
  readonly charged: number
  readonly at: number
}

/** How much of each new measurement goes into a usual cost. */
const COST_WEIGHT = 0.2

export class UpstreamGate {
  private active = 0
  /** Of `active`, those the adaptive limit counts. */
  private counted = 0
  /** Clients with requests waiting (or granted and not done); among equals, this order takes turns. */
  private readonly clients = new Map<string, Client>()
  private waiting = 0
  /** Of `waiting`, those not counted by the adaptive limit. */
  private waitingUncounted = 0
  /** The start of the request granted last, on the virtual clock: where an idle client starts. */
  private virtual = 0
  /** The usual cost of any request, for a client not measured yet. */
  private typicalCost = 0

  constructor (
    readonly connections: number,
    readonly maxPending: number,
    readonly adaptive?: ConcurrencyLimit,
    private readonly clock: () => number = () => performance.now()
  ) {}

  get inFlight (): number {
    return this.active
  }

  /** Requests in flight that the adaptive limit counts. */
  get countedInFlight (): number {
    return this.counted
  }

  /** The most requests in flight at once right now: the adaptive limit, or `connections`. */
  get limit (): number {
    return Math.min(this.connections, this.adaptive?.limit ?? this.connections)
  }

  get pending (): number {
    return this.waiting
  }

  /**
   * Asks for a slot for a request of `client`: `grant` runs now or when one frees ('now',
   * 'queued'), or never ('full'). A queued request may later be pushed out by another client's
   * to make room: then `refuse` runs instead (and never `grant`). The returned `cancel` takes a
   * queued request out of the queue (its client left, or its time ran out); it does nothing once
   * granted or refused. `client` is asked only when the request has to wait. A request granted
   * from the queue gets a ticket, to give back to `leave`; one not `counted` by the adaptive
   * limit must say so again there.
   */
  enter (client: () => string, grant: (ticket?: Ticket) => void, refuse: () => void, counted = true): { admitted: Admitted, cancel: () => void } {
    // An uncounted request waits only behind other uncounted ones (and a full pool).
    if ((counted ? this.waiting : this.waitingUncounted) === 0 && this.canGo(counted)) {
      this.take(counted)
      grant()
      return { admitted: 'now', cancel: noop }
    }
    if (this.maxPending === 0) return { admitted: 'full', cancel: noop }
    const key = client()
    // Room is made only at the expense of a client that would still have more waiting than
    // this one; among equals the newcomer is the one refused, never a request that waited.
    if (this.waiting >= this.maxPending && !this.dropFromLongest((this.clients.get(key)?.waiters.length ?? 0) + 1)) return { admitted: 'full', cancel: noop }
    let record = this.clients.get(key)
    if (record === undefined) {
      record = { key, waiters: [], finish: this.virtual, cost: this.typicalCost, granted: 0 }
      this.clients.set(key, record)
    }
    const waiter: Waiter = { client: record, counted, grant, refuse }
    record.waiters.push(waiter)
    this.waiting++
    if (!counted) this.waitingUncounted++
    return { admitted: 'queued', cancel: () => { this.remove(waiter) } }
  }

  /**
   * A granted request is done with the upstream: its time is charged (unless it was never
   * `sent`: then it says nothing of the upstream), and the next clients go. `headMs`: how long
   * its answer's head took, when it came.
   */
  leave (counted = true, ticket?: Ticket, sent = true, headMs?: number): void {
    this.active--
    if (counted) this.counted--
    if (ticket !== undefined) this.charge(ticket, counted && sent, headMs)
    this.drain()
  }

  /** A counted request in flight turned out to be a stream (its answer's head said so): the adaptive limit stops counting it. */
  uncount (): void {
    this.counted--
    this.drain()
  }

  /**
   * A counted request's time to the answer's head (ms), for the adaptive limit; `alone` when it
   * was the only counted request in flight as it was sent.
   */
  sample (ms: number, alone: boolean): void {
    if (this.adaptive?.sample(ms, alone) === true) this.drain()
  }

  private canGo (counted: boolean): boolean {
    return this.active < this.connections && (!counted || this.adaptive === undefined || this.counted < this.adaptive.limit)
  }

  private take (counted: boolean): void {
    this.active++
    if (counted) this.counted++
  }

  /**
   * Grants waiters, the client furthest behind first, while there is room for its next one;
   * when only the adaptive limit holds that one back, uncounted requests of others may go.
   */
  private drain (): void {
    for (;;) {
      let next = this.furthestBehind(false)
      if (next === undefined) return
      if (!this.canGo(next.waiters[0]!.counted)) {
        if (this.waitingUncounted === 0 || !this.canGo(false)) return
        next = this.furthestBehind(true)!
      }
      const waiter = next.waiters[0]!
      next.waiters.shift()
      this.waiting--
      if (!waiter.counted) this.waitingUncounted--
      const start = Math.max(this.virtual, next.finish)
      this.virtual = start
      const charged = next.cost
      next.finish = start + charged
      next.granted++
      // Among clients level with each other, it goes to the back.
      this.clients.delete(next.key)
      this.clients.set(next.key, next)
      this.take(waiter.counted)
      waiter.grant({ client: next, charged, at: this.clock() })
    }
  }

  /**
   * The waiting client with the least upstream time charged (an idle one counts as level); the
   * first such in turn order. `uncounted`: among those whose next request is not counted.
   */
  private furthestBehind (uncounted: boolean): Client | undefined {
    let best: Client | undefined
    let bestStart = Infinity
    for (const c of this.clients.values()) {
      if (c.waiters.length === 0 || (uncounted && c.waiters[0]!.counted)) continue
      const start = Math.max(this.virtual, c.finish)
      if (start < bestStart) {
        best = c
        bestStart = start
      }
    }
    return best
  }

  /**
   * Replaces the estimate charged at grant with the time the request really kept the upstream
   * busy, when `measured`: its time in flight, less what it waited inside the upstream behind
   * others (its wait for the head beyond the upstream's usual, the adaptive limit's baseline).
   * Without that, a quick request queued inside the backend behind slow ones would be charged
   * as much as they are.
   */
  private charge (ticket: Ticket, measured: boolean, headMs: number | undefined): void {
    const c = ticket.client
    c.granted--
    if (measured) {
      const base = this.adaptive?.baselineMs
      const queued = headMs === undefined || base === undefined ? 0 : Math.max(0, headMs - base)
      const used = Math.max(0, this.clock() - ticket.at - queued)
      c.finish += used - ticket.charged
      c.cost += (used - c.cost) * COST_WEIGHT
      this.typicalCost += (used - this.typicalCost) * COST_WEIGHT
    }
    this.forgetIfIdle(c)
  }

  /** Refuses the newest waiter of the client with the most waiting, if it has more than `than`. */
  private dropFromLongest (than: number): boolean {
    let longest: Client | undefined
    for (const c of this.clients.values()) {
      if (c.waiters.length > (longest?.waiters.length ?? than)) longest = c
    }
    if (longest === undefined) return false
    const dropped = longest.waiters.pop()!
    this.waiting--
    if (!dropped.counted) this.waitingUncounted--
    this.forgetIfIdle(longest)
    dropped.refuse()
    return true
  }

  private remove (waiter: Waiter): void {
    const c = waiter.client
    const i = c.waiters.indexOf(waiter)
    if (i < 0) return
    c.waiters.splice(i, 1)
    this.waiting--
    if (!waiter.counted) this.waitingUncounted--
    this.forgetIfIdle(c)
    // It may have been the one whose turn it was, held back by the adaptive limit.
    if (i === 0) this.drain()
  }

  /** A client with nothing waiting or granted is forgotten: next time it starts level with the others. */
  private forgetIfIdle (c: Client): void {
    if (c.waiters.length === 0 && c.granted === 0 && this.clients.get(c.key) === c) this.clients.delete(c.key)
  }
}

function noop (): void {}
