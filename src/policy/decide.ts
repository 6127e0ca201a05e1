// The decision for one request (SPEC.md "Decision for one request"), as a pure function of
// the compiled policy and a few request facts. No I/O, no allocation on the common paths
// beyond the returned object.
import type { CompiledPolicy } from './compile.js'

export type Reason =
  | 'no_origin'
  | 'no_origin_denied'
  | 'same_origin'
  | 'denylisted'
  | 'origin_allowed'
  | 'origin_not_allowed'
  | 'method_not_allowed'
  | 'header_not_allowed'

/** The metric label: what happened, mode included. */
export type Outcome = 'allowed' | 'denied' | 'would_deny' | 'no_origin' | 'same_origin'

export interface Decision {
  /** The policy's verdict before the mode is applied. */
  readonly allowed: boolean
  readonly reason: Reason
  readonly outcome: Outcome
  /** The pattern that matched (allow or deny), when one did. */
  readonly rule?: string
  /** Where that pattern came from: `file`, `env`, `redis`, `redis-expiring`. */
  readonly ruleSource?: string
  /** Answer 403 without contacting the upstream. */
  readonly reject: boolean
  /** The `Access-Control-Allow-Origin` value to send, or undefined to send no CORS headers. */
  readonly allowOrigin: string | undefined
  /** The header that failed `header_not_allowed`, or the method that failed `method_not_allowed`. */
  readonly detail?: string
}

export interface RequestFacts {
  /** The raw `Origin` header, undefined when absent. */
  readonly origin: string | undefined
  /** The request's own origin (`scheme://host`), for the same-origin check. */
  readonly selfOrigin: string | undefined
  /** The method to check: `Access-Control-Request-Method` for a preflight, else the request's. */
  readonly method: string
  /** `Access-Control-Request-Headers` of a preflight. */
  readonly requestHeaders?: string | undefined
  readonly now: number
}

// Fetch Standard §2.2.2 "CORS-safelisted request-header": these names never need listing.
// `content-type` is not here: a browser only puts it in a preflight when its value is not
// safelisted, and then the answer must list it.
const SAFELISTED_HEADERS = new Set(['accept', 'accept-language', 'content-language', 'range'])

interface Verdict { allowed: boolean, reason: Reason, rule?: string, ruleSource?: string, detail?: string }

export function decide (policy: CompiledPolicy, facts: RequestFacts): Decision {
  const { origin } = facts
  if (origin === undefined) {
    const allowed = policy.noOrigin === 'allow'
    return applyMode(policy, { allowed, reason: allowed ? 'no_origin' : 'no_origin_denied' }, undefined)
  }
  if (facts.selfOrigin !== undefined && origin === facts.selfOrigin) {
    return { allowed: true, reason: 'same_origin', outcome: 'same_origin', reject: false, allowOrigin: origin }
  }
  return applyMode(policy, judge(policy, facts, origin), origin)
}

function judge (policy: CompiledPolicy, facts: RequestFacts, origin: string): Verdict {
  const denied = policy.deny.any ?? policy.deny.match(origin, facts.now)
  if (denied !== undefined) return { allowed: false, reason: 'denylisted', rule: denied.pattern.text, ruleSource: denied.source }
  const allowed = policy.allowAll ? policy.allow.any : policy.allow.match(origin, facts.now)
  if (allowed === undefined) return { allowed: false, reason: 'origin_not_allowed' }
  const rule = allowed.pattern.text
  const ruleSource = allowed.source
  if (!policy.methods.has(facts.method)) return { allowed: false, reason: 'method_not_allowed', rule, ruleSource, detail: facts.method }
  const bad = facts.requestHeaders === undefined ? undefined : firstUnlistedHeader(policy, facts.requestHeaders)
  if (bad !== undefined) return { allowed: false, reason: 'header_not_allowed', rule, ruleSource, detail: bad }
  return { allowed: true, reason: 'origin_allowed', rule, ruleSource }
}

function applyMode (policy: CompiledPolicy, v: Verdict, origin: string | undefined): Decision {
  const echo = origin === undefined ? (policy.allowAll ? '*' : undefined) : (policy.allowAll ? '*' : origin)
  const base = { allowed: v.allowed, reason: v.reason, rule: v.rule, ruleSource: v.ruleSource, detail: v.detail }
  if (v.allowed) {
    return { ...base, outcome: origin === undefined ? 'no_origin' : 'allowed', reject: false, allowOrigin: echo }
  }
  switch (policy.mode) {
    case 'report-only': return { ...base, outcome: 'would_deny', reject: false, allowOrigin: echo }
    case 'headers-only': return { ...base, outcome: 'denied', reject: false, allowOrigin: undefined }
    case 'enforce': return { ...base, outcome: 'denied', reject: true, allowOrigin: undefined }
  }
}

/** The first requested header that the policy does not allow, or undefined. */
function firstUnlistedHeader (policy: CompiledPolicy, requested: string): string | undefined {
  if (policy.allowHeaders === '*') return undefined
  for (const part of requested.split(',')) {
    const name = part.trim().toLowerCase()
    if (name === '' || SAFELISTED_HEADERS.has(name) || policy.allowHeaders.has(name)) continue
    return name
  }
  return undefined
}
