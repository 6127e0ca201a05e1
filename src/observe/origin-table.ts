// The observed origins of each policy, counted on this replica (SPEC.md "Observed origins").
//
// `record()` runs once per finished request, so a known origin costs a Map lookup and a few
// array increments: its row was made when the origin was first seen, with its counters in one
// preallocated Float64Array, and nothing is allocated again for it. The table is bounded
// whatever clients send: at most `maxOrigins` rows per policy; past that, new origins are
// counted in the policy's `other` row, and a header that is not a serialized origin is never
// kept (it counts in the `invalid` row). A request without `Origin` has a row of its own.
//
// Each row keeps totals since this process started and, beside them, how much of those totals
// has already been flushed to Redis; the difference is what the next flush sends, so counts
// simply wait here while Redis is away.
import type { Outcome, Reason } from '../policy/decide.js'
import { parseSerializedOrigin } from '../policy/origin-pattern.js'

/** Outcomes as observed: a request without `Origin` that the policy allows counts as `allowed`. */
export const OUTCOMES = ['allowed', 'denied', 'would_deny', 'same_origin'] as const
export type ObservedOutcome = typeof OUTCOMES[number]

export const REASONS: readonly Reason[] = ['no_origin', 'no_origin_denied', 'same_origin', 'denylisted', 'origin_allowed', 'origin_not_allowed', 'method_not_allowed', 'header_not_allowed']

/** Counter slots: the outcomes, then the reasons. */
export const SLOTS = OUTCOMES.length + REASONS.length

// Slot of an outcome and of a reason, in `OUTCOMES` and `REASONS` order. A switch compares
// internalized strings by identity: cheaper here than a keyed lookup in an object or a Map.
function outcomeSlot (outcome: Outcome): number {
  switch (outcome) {
    case 'denied': return 1
    case 'would_deny': return 2
    case 'same_origin': return 3
    default: return 0 // allowed, no_origin
  }
}

function reasonSlot (reason: Reason): number {
  switch (reason) {
    case 'no_origin': return 4
    case 'no_origin_denied': return 5
    case 'same_origin': return 6
    case 'denylisted': return 7
    case 'origin_allowed': return 8
    case 'origin_not_allowed': return 9
    case 'method_not_allowed': return 10
    case 'header_not_allowed': return 11
  }
}

/** Longest `Origin` header kept verbatim; a serialized origin is far shorter. */
export const MAX_ORIGIN_LENGTH = 300
/** Routes remembered per origin. */
export const MAX_ROUTES = 16

/** Row keys that are not origins (a serialized origin never contains parentheses). */
export const NO_ORIGIN = '(none)'
export const OTHER = '(other)'
export const INVALID = '(invalid)'

export class ObservedRow {
  /** `[0, SLOTS)`: totals since start; `[SLOTS, 2·SLOTS)`: the part of them already flushed. */
  readonly counts = new Float64Array(SLOTS * 2)
  readonly routes: string[] = []
  firstSeen: number
  lastSeen: number

  /** `key`: the origin as sent, or `NO_ORIGIN`, `OTHER`, `INVALID`. */
  constructor (readonly key: string, now: number) {
    this.firstSeen = now
    this.lastSeen = now
  }

  get requests (): number {
    const c = this.counts
    return c[0]! + c[1]! + c[2]! + c[3]!
  }

  /** True when every count has been flushed. */
  get settled (): boolean {
    const c = this.counts
    for (let i = 0; i < SLOTS; i++) if (c[i] !== c[SLOTS + i]) return false
    return true
  }
}

/** One policy's rows. */
export class PolicyTable {
  readonly rows = new Map<string, ObservedRow>()
  readonly noOrigin: ObservedRow
  readonly other: ObservedRow
  readonly invalid: ObservedRow

  constructor (readonly policy: string, readonly maxOrigins: number, now: number) {
    this.noOrigin = new ObservedRow(NO_ORIGIN, now)
    this.other = new ObservedRow(OTHER, now)
    this.invalid = new ObservedRow(INVALID, now)
  }

  /** The row for an origin not in `rows` yet: a new one while there is room, else `other` or `invalid`. */
  admit (origin: string, now: number): ObservedRow {
    if (!isSerializedOrigin(origin)) return this.invalid
    if (this.rows.size >= this.maxOrigins) return this.other
    const row = new ObservedRow(origin, now)
    this.rows.set(origin, row)
    return row
  }

  /** Every row, the special ones included. */
  * allRows (): Iterable<ObservedRow> {
    yield this.noOrigin
    yield * this.rows.values()
    yield this.other
    yield this.invalid
  }
}

/**
 * True for an `Origin` a browser could have sent: the literal `null`, or a serialized origin
 * (lower-case `scheme://host[:port]`, ASCII, no default port, no list, no control bytes).
 */
export function isSerializedOrigin (origin: string): boolean {
  if (origin.length > MAX_ORIGIN_LENGTH) return false
  return origin === 'null' || parseSerializedOrigin(origin) !== undefined
}

export interface OriginObserverOptions {
  maxOrigins: number
  /** A row not seen for this long (and fully flushed) is forgotten by `sweep()`. */
  retentionMs: number
  /** The clock, for tests (read on every record). Default: `Date.now`, read once a second. */
  now?: () => number
}

/** How often the default clock is read: first and last seen are kept to the second. */
const CLOCK_TICK_MS = 1000

export class OriginObserver {
  readonly maxOrigins: number
  readonly retentionMs: number
  private readonly tables = new Map<string, PolicyTable>()
  private readonly clock: (() => number) | undefined
  // `Date.now()` costs more than the rest of `record()` together; a second is precise enough
  // for first and last seen, so the time is read by a timer instead of per request.
  private coarseNow = Date.now()
  private readonly ticker: NodeJS.Timeout | undefined
  // Most gateways have one or two policies: the last table used is one identity check away.
  private lastPolicy: string | undefined
  private lastTable: PolicyTable | undefined

  constructor ({ maxOrigins, retentionMs, now }: OriginObserverOptions) {
    this.maxOrigins = maxOrigins
    this.retentionMs = retentionMs
    this.clock = now
    if (now === undefined) {
      this.ticker = setInterval(() => { this.coarseNow = Date.now() }, CLOCK_TICK_MS)
      this.ticker.unref()
    }
  }

  /** Stops the clock timer. */
  close (): void {
    clearInterval(this.ticker)
  }

  /** Counts one finished request. `origin` is the header as sent, undefined when absent. */
  record (policy: string, origin: string | undefined, outcome: Outcome, reason: Reason, route: string): void {
    const now = this.clock === undefined ? this.coarseNow : this.clock()
    let table = policy === this.lastPolicy ? this.lastTable : this.tables.get(policy)
    if (table === undefined) {
      // Policy names come from the config, so this map is bounded by it.
      table = new PolicyTable(policy, this.maxOrigins, now)
      this.tables.set(policy, table)
    }
    this.lastPolicy = policy
    this.lastTable = table
    const row = origin === undefined ? table.noOrigin : table.rows.get(origin) ?? table.admit(origin, now)
    const c = row.counts
    c[outcomeSlot(outcome)]!++
    c[reasonSlot(reason)]!++
    row.lastSeen = now
    const routes = row.routes
    // Most origins hit one route: the common case is one identity comparison.
    if (routes[routes.length - 1] !== route && routes.length < MAX_ROUTES && !routes.includes(route)) routes.push(route)
  }

  table (policy: string): PolicyTable | undefined {
    return this.tables.get(policy)
  }

  get policies (): IterableIterator<string> {
    return this.tables.keys()
  }

  /** Requests counted in `other` and `invalid`, per policy: what the drop metric reports. */
  * dropped (): Iterable<{ policy: string, row: 'other' | 'invalid', requests: number }> {
    for (const table of this.tables.values()) {
      yield { policy: table.policy, row: 'other', requests: table.other.requests }
      yield { policy: table.policy, row: 'invalid', requests: table.invalid.requests }
    }
  }

  /**
   * Forgets origins not seen within the retention whose counts have all been flushed (or,
   * with `unflushedToo`, when nothing flushes them), so the bound does not fill with the past.
   */
  sweep (unflushedToo: boolean): number {
    const cutoff = this.now() - this.retentionMs
    let removed = 0
    for (const table of this.tables.values()) {
      for (const [origin, row] of table.rows) {
        if (row.lastSeen < cutoff && (unflushedToo || row.settled)) {
          table.rows.delete(origin)
          removed++
        }
      }
    }
    return removed
  }

  now (): number {
    return this.clock === undefined ? Date.now() : this.clock()
  }
}
