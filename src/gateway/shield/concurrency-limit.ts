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
// samples, no change: a limit only moves on requests that came back (or timed out). The
// baseline keeps the last BASELINE_SAMPLES of the last minute; below the ceiling, when no
// request has gone alone for PROBE_EVERY_MS, the gate sends one request at a time until one
// does (for at most PROBE_MAX_MS), so that a baseline is always recent even under a flood.
// Long-polls and event streams are not samples (their head comes when the upstream has news,
// not when it is done queueing) and are not counted against the limit (forward.ts decides
// which requests those are).

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
/** Baseline samples older than this are dropped: a backend that got slower is relearnt. */
const BASELINE_MAX_AGE_MS = 60_000
/** Below the ceiling, at most this long without a request sent alone before one is made so (Envoy's periodic minRTT measurement). */
const PROBE_EVERY_MS = 10_000
/** How long the gate sends one request at a time, at most, waiting for one to go alone. */
const PROBE_MAX_MS = 1_000

export class ConcurrencyLimit {
  private value: number
  /** Requests sent alone, oldest first: times (ms) and when they came back. */
  private readonly baseline: Array<{ ms: number, at: number }> = []
  private readonly window: number[] = []
  private seen = 0
  private windowStart: number
  /** The baseline's quantile as of the last window (ms), once there is one. */
  baselineMs: number | undefined
  /** When the last request went alone, or the last probe began. */
  private lastAlone: number
  /** While set, one request at a time, so that the next one is sent alone (see PROBE_EVERY_MS). */
  private probeStart: number | undefined

  /** Starts at `max`: a backend nobody measured yet is trusted with the whole pool. `clock` in ms. */
  constructor (readonly max: number, private readonly onChange: (limit: number) => void = () => {}, private readonly clock: () => number = () => performance.now()) {
    this.value = max
    this.windowStart = clock()
    this.lastAlone = this.windowStart
  }

  get limit (): number {
    if (this.probeStart !== undefined) {
      if (this.clock() - this.probeStart < PROBE_MAX_MS) return 1
      this.probeStart = undefined
    }
    return Math.max(1, Math.floor(this.value))
  }

  /**
   * One request's time from dispatch to the answer's head, in ms; `alone` when nothing else
   * was in flight to the upstream as it was sent. True when the limit went up (waiting
   * requests may go).
   */
  sample (ms: number, alone: boolean): boolean {
    const now = this.clock()
    const before = this.limit
    if (alone) {
      this.baseline.push({ ms, at: now })
      if (this.baseline.length > BASELINE_SAMPLES) this.baseline.shift()
      this.lastAlone = now
      this.probeStart = undefined
    }
    this.seen++
    if (this.window.length < WINDOW_KEEP) this.window.push(ms)
    else {
      const i = Math.floor(Math.random() * this.seen)
      if (i < WINDOW_KEEP) this.window[i] = ms
    }
    if (now - this.windowStart < WINDOW_MS || this.seen < WINDOW_SAMPLES) return this.limit > before
    const observed = quantile(this.window.sort(ascending))
    this.window.length = 0
    this.seen = 0
    this.windowStart = now
    while (this.baseline.length > 0 && now - this.baseline[0]!.at > BASELINE_MAX_AGE_MS) this.baseline.shift()
    // Held below the ceiling with no request sent alone for a while: the baseline may be out of
    // date (the backend got slower for good). Find out with one request alone.
    if (Math.floor(this.value) < this.max && now - this.lastAlone > PROBE_EVERY_MS) {
      this.probeStart = now
      // Not again before PROBE_EVERY_MS, whether or not this one finds a request to send alone.
      this.lastAlone = now
    }
    if (this.baseline.length === 0) return this.limit > before
    const base = quantile(this.baseline.map((b) => b.ms).sort(ascending))
    this.baselineMs = base
    const gradient = clamp((base * (1 + TOLERANCE) + SLACK_MS) / Math.max(observed, 0.001), MIN_GRADIENT, MAX_GRADIENT)
    const shown = Math.max(1, Math.floor(this.value))
    this.value = clamp(this.value * gradient + Math.sqrt(this.value), 1, this.max)
    const limit = Math.max(1, Math.floor(this.value))
    if (limit !== shown) this.onChange(limit)
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
