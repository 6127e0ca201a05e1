// A bound on what one upstream is asked at once (Envoy's circuit breakers: `max_connections`,
// `max_pending_requests`): at most `connections` requests in flight, at most `maxPending`
// waiting for one of them; past that the request is refused at once rather than queued
// without end in front of a backend that cannot keep up.

export type Admitted = 'now' | 'queued' | 'full'

interface Waiter { grant: () => void }

export class UpstreamGate {
  private active = 0
  private readonly queue: Waiter[] = []

  constructor (readonly connections: number, readonly maxPending: number) {}

  get inFlight (): number {
    return this.active
  }

  get pending (): number {
    return this.queue.length
  }

  /**
   * Asks for a slot: `grant` runs now or when one frees ('now', 'queued'), or never ('full').
   * The returned `cancel` takes a queued request out of the queue (its client left, or its
   * time ran out); it does nothing once granted.
   */
  enter (grant: () => void): { admitted: Admitted, cancel: () => void } {
    if (this.active < this.connections) {
      this.active++
      grant()
      return { admitted: 'now', cancel: noop }
    }
    if (this.queue.length >= this.maxPending) return { admitted: 'full', cancel: noop }
    const waiter: Waiter = { grant }
    this.queue.push(waiter)
    return {
      admitted: 'queued',
      cancel: () => {
        const i = this.queue.indexOf(waiter)
        if (i >= 0) this.queue.splice(i, 1)
      }
    }
  }

  /** A granted request is done with the upstream: the next one waiting goes. */
  leave (): void {
    const next = this.queue.shift()
    if (next === undefined) {
      this.active--
      return
    }
    next.grant()
  }
}

function noop (): void {}
