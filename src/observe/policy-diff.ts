// What a policy change would do to real traffic (SPEC.md "Observed origins", `corsgate diff`):
// every observed origin is judged under the live policy and under the candidate, and the
// origins whose verdict flips are listed with their request counts. Pure: the caller brings
// the compiled policies and the observed counts.
//
// The origin is judged, not the request: methods and headers are not observed, so each policy
// is asked about its own first method without request headers. Requests that were same-origin
// stay same-origin whatever the lists say and are left out; `other` and `invalid` rows carry no
// origin to judge and are reported as unjudged.
import type { CompiledPolicy } from '../policy/compile.js'
import { decide } from '../policy/decide.js'
import { requestsOf, type ObservedCounts } from './observed-report.js'
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
const RANK: Record<string, number> = { 'allowed>denied': 0, 'would_deny>denied': 1 }

export function diffPolicies (live: ReadonlyMap<string, CompiledPolicy>, candidate: ReadonlyMap<string, CompiledPolicy>, observed: ReadonlyMap<string, ObservedCounts>, since: string, now: number): DiffReport {
  const flips: Flip[] = []
  const unjudged: DiffReport['unjudged'] = {}
  const missing = new Set<string>()
  for (const [name, counts] of observed) {
    const before = live.get(name)
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
      const x = judgeOrigin(before, origin, now)
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
  for (const name of live.keys()) if (!candidate.has(name)) missing.add(name)
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
