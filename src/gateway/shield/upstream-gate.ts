// A bound on what one upstream is asked at once (Envoy's circuit breakers: `max_connections`,
// `max_pending_requests`): at most `connections` requests in flight, at most `maxPending`
// waiting for one of them; past that the request is refused at once rather than queued
// without end in front of a backend that cannot keep up.
//
// The wait is fair between clients (fair queuing, as a router shares a link): each client
// address has its own queue, and a freed slot goes to the clients in turn, so one client's
// burst of requests cannot make everyone else wait behind all of it. When the queue is full,
// the client with the most requests waiting gives up its newest one if that still leaves it
// more than the newcomer's client (longest-queue drop); otherwise the newcomer is refused. So a
// flood from one address fills the queue without keeping other clients out of it. Behind a
// proxy that hides client addresses (no `trustProxy`) every request has one address, and this
// is a plain first-come queue.
//
// Below `connections`, an adaptive limit (concurrency-limit.ts) may hold requests back sooner,
// at what the upstream serves at once, so that the queue is this fair one rather than the
// backend's own. Requests not `counted` (long-polls, event streams) take from `connections`
// only.
import type { ConcurrencyLimit } from './concurrency-limit.js'

export type Admitted = 'now' | 'queued' | 'full'

interface Waiter {
  readonly client: string
  readonly counted: boolean
  readonly grant: () => void
  readonly refuse: () => void
}

export class UpstreamGate {
  private active = 0
  /** Of `active`, those the adaptive limit counts. */
  private counted = 0
  /** Waiters per client, in arrival order; the map's own order is the turn order. */
  private readonly queues = new Map<string, Waiter[]>()
  private waiting = 0

  constructor (readonly connections: number, readonly maxPending: number, readonly adaptive?: ConcurrencyLimit) {}

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
   * granted or refused. `client` is asked only when the request has to wait. A request not
   * `counted` by the adaptive limit must say so again to `leave`.
   */
  enter (client: () => string, grant: () => void, refuse: () => void, counted = true): { admitted: Admitted, cancel: () => void } {
    if (this.waiting === 0 && this.canGo(counted)) {
      this.take(counted)
      grant()
      return { admitted: 'now', cancel: noop }
    }
    if (this.maxPending === 0) return { admitted: 'full', cancel: noop }
    const key = client()
    // Room is made only at the expense of a client that would still have more waiting than
    // this one; among equals the newcomer is the one refused, never a request that waited.
    if (this.waiting >= this.maxPending && !this.dropFromLongest((this.queues.get(key)?.length ?? 0) + 1)) return { admitted: 'full', cancel: noop }
    const waiter: Waiter = { client: key, counted, grant, refuse }
    let queue = this.queues.get(key)
    if (queue === undefined) {
      queue = []
      this.queues.set(key, queue)
    }
    queue.push(waiter)
    this.waiting++
    return { admitted: 'queued', cancel: () => { this.remove(waiter) } }
  }

  /** A granted request is done with the upstream: the next clients in turn go. */
  leave (counted = true): void {
    this.active--
    if (counted) this.counted--
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

  /** Grants waiters in turn while there is room for the one whose turn it is. */
  private drain (): void {
    for (;;) {
      const turn = this.queues.entries().next()
      if (turn.done === true) return
      const [key, queue] = turn.value
      const waiter = queue[0]!
      if (!this.canGo(waiter.counted)) return
      // That client goes to the back of the turn order.
      this.queues.delete(key)
      queue.shift()
      if (queue.length > 0) this.queues.set(key, queue)
      this.waiting--
      this.take(waiter.counted)
      waiter.grant()
    }
  }

  /** Refuses the newest waiter of the client with the most waiting, if it has more than `than`. */
  private dropFromLongest (than: number): boolean {
    let longest: Waiter[] | undefined
    for (const queue of this.queues.values()) {
      if (queue.length > (longest?.length ?? than)) longest = queue
    }
    if (longest === undefined) return false
    const dropped = longest.pop()!
    if (longest.length === 0) this.queues.delete(dropped.client)
    this.waiting--
    dropped.refuse()
    return true
  }

  private remove (waiter: Waiter): void {
    const queue = this.queues.get(waiter.client)
    const i = queue?.indexOf(waiter) ?? -1
    if (i < 0) return
    queue!.splice(i, 1)
    if (queue!.length === 0) this.queues.delete(waiter.client)
    this.waiting--
  }
}

function noop (): void {}
