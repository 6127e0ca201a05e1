// What a policy change would do to real traffic (SPEC.md "Observed origins", `corsgate diff`):
// every observed origin is judged under the live policy and under the candidate, and the
// origins whose verdict flips are listed with their request counts. Pure: the caller brings
// the compiled policies and the observed counts.
//
// The origin is judged, not the request: methods and headers are not observed, so each policy
// is asked about its own first method without request headers. Requests that were same-origin
// stay same-origin whatever the lists say and are left out; `other` and `invalid` rows carry no
// origin to judge and are reported as unjudged.
//
// The live side is either compiled policies (the gateway's own snapshot, or a live config file
// with the current Redis lists) or `'observed'`: what the gateways actually decided, read from
// the counts' reasons (the verdict with the most requests, when a list changed in the window).
import type { CompiledPolicy } from '../policy/compile.js'
import { decide } from '../policy/decide.js'
import { requestsOf, type ObservedCounts, type OriginAggregate } from './observed-report.js'
import { INVALID, NO_ORIGIN, OTHER, OUTCOMES } from './origin-table.js'

/** What the gateway does with the origin's requests. */
export type Verdict = 'allowed' | 'would_deny' | 'denied'

export interface OriginVerdict {
  verdict: Verdict
  reason: string
  rule: string | null
}

export interface Flip {
  policy: string
  /** null: requests without `Origin`. */
  origin: string | null
  requests: number
  from: Verdict
  to: Verdict
  fromReason: string
  toReason: string
  fromRule: string | null
  toRule: string | null
  /** Served now, refused under the candidate. */
  breaking: boolean
}

export interface DiffReport {
  since: string
  flips: Flip[]
  /** Flips that refuse traffic served now, and their requests. */
  breaking: { origins: number, requests: number }
  /** Per policy: requests in `other` and `invalid`, which cannot be judged by origin. */
  unjudged: Record<string, { other: number, invalid: number }>
  /** Policies observed or live that the candidate does not define (not judged). */
  missingPolicies: string[]
}

export function judgeOrigin (policy: CompiledPolicy, origin: string | undefined, now: number): OriginVerdict {
  const d = decide(policy, { origin, selfOrigin: undefined, method: policy.config.methods[0] ?? 'GET', now })
  const verdict: Verdict = d.outcome === 'denied' ? 'denied' : d.outcome === 'would_deny' ? 'would_deny' : 'allowed'
  return { verdict, reason: d.reason, rule: d.rule ?? null }
}

const SAME_ORIGIN = OUTCOMES.indexOf('same_origin')
const DENIED = OUTCOMES.indexOf('denied')
const WOULD_DENY = OUTCOMES.indexOf('would_deny')
/** Reasons that judge the origin itself (the others are about methods and headers). */
const ORIGIN_REFUSED = ['denylisted', 'origin_not_allowed', 'no_origin_denied']

/** The origin-level verdict the gateways gave, from observed counts. */
export function observedVerdict (a: OriginAggregate): OriginVerdict {
  let refused = 0
  let top: [string, number] = ['', 0]
  let topAllowed: [string, number] = ['', 0]
  for (const [reason, n] of a.reasons) {
    if (reason === 'same_origin') continue
    if (ORIGIN_REFUSED.includes(reason)) {
      refused += n
      if (n > top[1]) top = [reason, n]
    } else if (n > topAllowed[1]) topAllowed = [reason, n]
  }
  const served = requestsOf(a) - a.outcomes[SAME_ORIGIN]! - refused
  if (refused > served) return { verdict: a.outcomes[WOULD_DENY]! > a.outcomes[DENIED]! ? 'would_deny' : 'denied', reason: top[0], rule: null }
  return { verdict: 'allowed', reason: topAllowed[0] === '' ? 'origin_allowed' : topAllowed[0], rule: null }
}
const RANK: Record<string, number> = { 'allowed>denied': 0, 'would_deny>denied': 1 }

export function diffPolicies (live: ReadonlyMap<string, CompiledPolicy> | 'observed', candidate: ReadonlyMap<string, CompiledPolicy>, observed: ReadonlyMap<string, ObservedCounts>, since: string, now: number): DiffReport {
  const flips: Flip[] = []
  const unjudged: DiffReport['unjudged'] = {}
  const missing = new Set<string>()
  for (const [name, counts] of observed) {
    const before = live === 'observed' ? 'observed' : live.get(name)
    const after = candidate.get(name)
    if (before === undefined || after === undefined) {
      if (after === undefined && counts.size > 0) missing.add(name)
      continue
    }
    unjudged[name] = { other: counts.get(OTHER) === undefined ? 0 : requestsOf(counts.get(OTHER)!), invalid: counts.get(INVALID) === undefined ? 0 : requestsOf(counts.get(INVALID)!) }
    for (const a of counts.values()) {
      if (a.key === OTHER || a.key === INVALID) continue
      const requests = requestsOf(a) - a.outcomes[SAME_ORIGIN]!
      if (requests <= 0) continue
      const origin = a.key === NO_ORIGIN ? undefined : a.key
      const x = before === 'observed' ? observedVerdict(a) : judgeOrigin(before, origin, now)
      const y = judgeOrigin(after, origin, now)
      if (x.verdict === y.verdict) continue
      flips.push({
        policy: name,
        origin: origin ?? null,
        requests,
        from: x.verdict,
        to: y.verdict,
        fromReason: x.reason,
        toReason: y.reason,
        fromRule: x.rule,
        toRule: y.rule,
        breaking: y.verdict === 'denied'
      })
    }
  }
  if (live !== 'observed') for (const name of live.keys()) if (!candidate.has(name)) missing.add(name)
  const rank = (f: Flip): number => RANK[`${f.from}>${f.to}`] ?? 2
  flips.sort((a, b) => rank(a) - rank(b) || b.requests - a.requests || a.policy.localeCompare(b.policy) || String(a.origin).localeCompare(String(b.origin)))
  const breaking = flips.filter((f) => f.breaking)
  return {
    since,
    flips,
    breaking: { origins: breaking.length, requests: breaking.reduce((s, f) => s + f.requests, 0) },
    unjudged,
    missingPolicies: [...missing].sort()
  }
}
