// How many requests one upstream is sent at once, found from its latency (Envoy's
// `adaptive_concurrency` filter with its gradient controller; Netflix's concurrency-limits).
//
// Why: a fixed pool (128 connections) in front of a backend that serves one request at a time
// (`php artisan serve`) or a few (php-fpm workers) puts the queue inside the backend, first
// come first served, where corsgate cannot share it fairly: behind a flood, every other
// client's request waits behind up to 128 of the flood's. Sending the backend only what it
// serves at once keeps the queue in corsgate's gate, which takes client addresses in turn.
//
// How: every window (at least WINDOW_MS and WINDOW_SAMPLES answers) a low quantile of the times
// to the answer's head is compared with the same quantile of the baseline: recent requests
// that were sent while nothing else was in flight to that upstream (no queue inside it):
//
//     gradient = (baseline × (1 + TOLERANCE) + SLACK_MS) / window, within [0.5, 1]
//     limit    = limit × gradient + √limit,             within [1, the route's connections]
//
// A queue inside the backend delays every request, the fastest too, so it moves the low end of
// the distribution; a mix of fast and slow endpoints does not, which is why a low quantile
// rather than the median (Vegas and Envoy's minRTT rest on the same idea). The limit falls by
// up to half a window but climbs only by the √limit headroom (as Netflix's Gradient2 does):
// one window that happens to look quiet must not let a flood back into the backend. A
// backend that keeps up keeps it at the ceiling. No traffic, no
// samples, no change: a limit only moves on requests that came back. Long-polls and event streams are not samples (their head comes when
// the upstream has news, not when it is done queueing) and are not counted against the limit
// (forward.ts decides which requests those are).

const WINDOW_MS = 100
const WINDOW_SAMPLES = 5
/** Answers a window keeps at most, chosen at random among all it saw (reservoir sampling), so a busy upstream costs no more to judge than a quiet one. */
const WINDOW_KEEP = 128
const QUANTILE = 0.1
const TOLERANCE = 0.25
const SLACK_MS = 10
const BASELINE_SAMPLES = 32
const MIN_GRADIENT = 0.5
const MAX_GRADIENT = 1

export class ConcurrencyLimit {
  private value: number
  private readonly baseline: number[] = []
  private baselineNext = 0
  private readonly window: number[] = []
  private seen = 0
  private windowStart: number

  /** Starts at `max`: a backend nobody measured yet is trusted with the whole pool. `clock` in ms. */
  constructor (readonly max: number, private readonly onChange: (limit: number) => void = () => {}, private readonly clock: () => number = () => performance.now()) {
    this.value = max
    this.windowStart = clock()
  }

  get limit (): number {
    return Math.max(1, Math.floor(this.value))
  }

  /**
   * One request's time from dispatch to the answer's head, in ms; `alone` when nothing else
   * was in flight to the upstream as it was sent. True when the limit went up (waiting
   * requests may go).
   */
  sample (ms: number, alone: boolean): boolean {
    const now = this.clock()
    if (alone) {
      this.baseline[this.baselineNext] = ms
      this.baselineNext = (this.baselineNext + 1) % BASELINE_SAMPLES
    }
    this.seen++
    if (this.window.length < WINDOW_KEEP) this.window.push(ms)
    else {
      const i = Math.floor(Math.random() * this.seen)
      if (i < WINDOW_KEEP) this.window[i] = ms
    }
    if (now - this.windowStart < WINDOW_MS || this.seen < WINDOW_SAMPLES) return false
    const observed = quantile(this.window.sort(ascending))
    this.window.length = 0
    this.seen = 0
    this.windowStart = now
    if (this.baseline.length === 0) return false
    const before = this.limit
    const gradient = clamp((quantile([...this.baseline].sort(ascending)) * (1 + TOLERANCE) + SLACK_MS) / Math.max(observed, 0.001), MIN_GRADIENT, MAX_GRADIENT)
    this.value = clamp(this.value * gradient + Math.sqrt(this.value), 1, this.max)
    if (this.limit !== before) this.onChange(this.limit)
    return this.limit > before
  }
}

/** QUANTILE of values sorted ascending. */
function quantile (sorted: readonly number[]): number {
  return sorted[Math.floor((sorted.length - 1) * QUANTILE)]!
}

function ascending (a: number, b: number): number {
  return a - b
}

function clamp (x: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, x))
}
