// Observed counts summed from wherever they are (Redis buckets of every replica, this
// replica's rows) and the answer of `GET /observed` and `corsgate origins observed`
// (SPEC.md "Observed origins").
import { splitField } from './observed-keys.js'
import { INVALID, NO_ORIGIN, OTHER, OUTCOMES, REASONS, SLOTS, type ObservedOutcome, type PolicyTable } from './origin-table.js'

export interface OriginAggregate {
  /** The origin as sent, or `(none)`, `(other)`, `(invalid)`. */
  readonly key: string
  /** Requests per outcome, in `OUTCOMES` order. */
  readonly outcomes: number[]
  readonly reasons: Map<string, number>
  readonly routes: Set<string>
  firstSeen: number | undefined
  lastSeen: number | undefined
}

/** Observed counts of one policy, by row key. */
export type ObservedCounts = Map<string, OriginAggregate>

function aggregate (counts: ObservedCounts, key: string): OriginAggregate {
  let a = counts.get(key)
  if (a === undefined) {
    a = { key, outcomes: OUTCOMES.map(() => 0), reasons: new Map(), routes: new Set(), firstSeen: undefined, lastSeen: undefined }
    counts.set(key, a)
  }
  return a
}

const OUTCOME_SLOT = new Map<string, number>(OUTCOMES.map((o, i) => [o, i]))

/** Adds one hour bucket (an HGETALL reply) to `counts`. Unknown fields are ignored. */
export function addBucket (counts: ObservedCounts, hash: Record<string, string>): void {
  for (const [f, value] of Object.entries(hash)) {
    const parts = splitField(f)
    if (parts === undefined) continue
    const [key, name] = parts
    const a = aggregate(counts, key)
    const n = Number(value)
    if (!Number.isFinite(n)) continue
    const slot = OUTCOME_SLOT.get(name)
    if (slot !== undefined) a.outcomes[slot]! += n
    else if (name.startsWith('r:')) a.reasons.set(name.slice(2), (a.reasons.get(name.slice(2)) ?? 0) + n)
    else if (name.startsWith('route:')) a.routes.add(name.slice(6))
    else if (name === 'first') a.firstSeen = a.firstSeen === undefined ? n : Math.min(a.firstSeen, n)
    else if (name === 'last') a.lastSeen = a.lastSeen === undefined ? n : Math.max(a.lastSeen, n)
  }
}

/**
 * Adds this replica's rows to `counts`: the whole totals (`unflushed: false`, the local view
 * without Redis) or only what has not reached Redis yet (`unflushed: true`, added to what Redis
 * holds). Rows last seen before `cutoff` are left out.
 */
export function addLocalRows (counts: ObservedCounts, table: PolicyTable, unflushed: boolean, cutoff: number): void {
  for (const row of table.allRows()) {
    if (row.lastSeen < cutoff) continue
    const c = row.counts
    let any = false
    const delta = new Array<number>(SLOTS)
    for (let i = 0; i < SLOTS; i++) {
      delta[i] = unflushed ? c[i]! - c[SLOTS + i]! : c[i]!
      if (delta[i]! > 0) any = true
    }
    if (!any) continue
    const a = aggregate(counts, row.key)
    for (let i = 0; i < OUTCOMES.length; i++) a.outcomes[i]! += delta[i]!
    REASONS.forEach((reason, i) => {
      const n = delta[OUTCOMES.length + i]!
      if (n > 0) a.reasons.set(reason, (a.reasons.get(reason) ?? 0) + n)
    })
    for (const route of row.routes) a.routes.add(route)
    a.firstSeen = a.firstSeen === undefined ? row.firstSeen : Math.min(a.firstSeen, row.firstSeen)
    a.lastSeen = a.lastSeen === undefined ? row.lastSeen : Math.max(a.lastSeen, row.lastSeen)
  }
}

export interface ObservedOrigin {
  /** null: requests without `Origin`. */
  origin: string | null
  requests: number
  outcomes: Record<ObservedOutcome, number>
  reasons: Record<string, number>
  routes: string[]
  firstSeen: string | null
  lastSeen: string | null
}

export interface ObservedReport {
  policy: string
  since: string
  origins: ObservedOrigin[]
  /** Requests from origins past `maxOrigins`. */
  other: number
  /** Requests whose `Origin` was not a serialized origin. */
  invalid: number
}

export function requestsOf (a: OriginAggregate): number {
  return a.outcomes.reduce((s, n) => s + n, 0)
}

const iso = (t: number | undefined): string | null => t === undefined ? null : new Date(t).toISOString()

/**
 * The report: every origin (and the no-Origin row), most requests first. With `outcome`, only
 * the origins that had requests with that outcome, most of those first, and `other`/`invalid`
 * count that outcome only.
 */
export function observedReport (policy: string, since: string, counts: ObservedCounts, outcome?: ObservedOutcome): ObservedReport {
  const slot = outcome === undefined ? undefined : OUTCOMES.indexOf(outcome)
  const weight = (a: OriginAggregate | undefined): number => a === undefined ? 0 : slot === undefined ? requestsOf(a) : a.outcomes[slot]!
  const rows = [...counts.values()].filter((a) => a.key !== OTHER && a.key !== INVALID && weight(a) > 0)
  rows.sort((a, b) => weight(b) - weight(a) || requestsOf(b) - requestsOf(a) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  return {
    policy,
    since,
    origins: rows.map((a) => ({
      origin: a.key === NO_ORIGIN ? null : a.key,
      requests: requestsOf(a),
      outcomes: Object.fromEntries(OUTCOMES.map((o, i) => [o, a.outcomes[i]!])) as Record<ObservedOutcome, number>,
      reasons: Object.fromEntries([...a.reasons].filter(([, n]) => n > 0).sort((x, y) => y[1] - x[1])),
      routes: [...a.routes].sort(),
      firstSeen: iso(a.firstSeen),
      lastSeen: iso(a.lastSeen)
    })),
    other: weight(counts.get(OTHER)),
    invalid: weight(counts.get(INVALID))
  }
}

/** Parses `?outcome=`; undefined when absent, an error message when it is not an outcome. */
export function parseOutcome (text: string | undefined): ObservedOutcome | undefined | Error {
  if (text === undefined || text === '') return undefined
  if ((OUTCOMES as readonly string[]).includes(text)) return text as ObservedOutcome
  return new Error(`outcome must be one of ${OUTCOMES.join(', ')}, got "${text}"`)
}
