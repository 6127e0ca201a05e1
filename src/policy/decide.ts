// The decision for one request (SPEC.md "Decision for one request"), as a pure function of
// the compiled policy and a few request facts. No I/O, no allocation on the common paths
// beyond the returned object.
import type { CompiledPolicy } from './compile.js'
import { parseSerializedOrigin } from './origin-pattern.js'

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
  /**
   * A websocket upgrade. Browsers apply no CORS to websockets, so the judgement is the only
   * defence against cross-site websocket hijacking: `headers-only` (which only withholds CORS
   * headers) refuses a denied upgrade like `enforce` does.
   */
  readonly upgrade?: boolean
}

// Fetch Standard §2.2.2 "CORS-safelisted request-header": these names never need listing.
// `content-type` is not here: a browser only puts it in a preflight when its value is not
// safelisted, and then the answer must list it.
const SAFELISTED_HEADERS = new Set(['accept', 'accept-language', 'content-language', 'range'])

export function decide (policy: CompiledPolicy, facts: RequestFacts): Decision {
  const { origin } = facts
  if (origin === undefined) {
    return policy.noOrigin === 'allow'
      ? applyMode(policy, facts, true, 'no_origin', undefined, undefined, undefined)
      : applyMode(policy, facts, false, 'no_origin_denied', undefined, undefined, undefined)
  }
  if (facts.selfOrigin !== undefined && origin === facts.selfOrigin) {
    // Echo like any allowed answer: a `*` policy sends `*` (its responses carry no Vary).
    return decision(true, 'same_origin', 'same_origin', undefined, undefined, false, policy.allowAll ? '*' : origin, undefined)
  }
  const denied = policy.deny.any ?? policy.deny.match(origin, facts.now)
  if (denied !== undefined) return applyMode(policy, facts, false, 'denylisted', denied.pattern.text, denied.source, undefined)
  const allowed = policy.allowAll ? policy.allow.any : policy.allow.match(origin, facts.now)
  if (allowed === undefined) return applyMode(policy, facts, false, 'origin_not_allowed', undefined, undefined, undefined)
  const rule = allowed.pattern.text
  const ruleSource = allowed.source
  if (!policy.methods.has(facts.method)) return applyMode(policy, facts, false, 'method_not_allowed', rule, ruleSource, facts.method)
  const bad = facts.requestHeaders === undefined ? undefined : firstUnlistedHeader(policy, facts.requestHeaders)
  if (bad !== undefined) return applyMode(policy, facts, false, 'header_not_allowed', rule, ruleSource, bad)
  return applyMode(policy, facts, true, 'origin_allowed', rule, ruleSource, undefined)
}

// Every decision is built here, with the same fields in the same order, so the objects share
// one hidden class and the hot path stays monomorphic (object spreads and optional fields
// made this the top self-time function of a preflight profile).
function decision (allowed: boolean, reason: Reason, outcome: Outcome, rule: string | undefined, ruleSource: string | undefined, reject: boolean, allowOrigin: string | undefined, detail: string | undefined): Decision {
  return { allowed, reason, outcome, rule, ruleSource, reject, allowOrigin, detail }
}

function applyMode (policy: CompiledPolicy, facts: RequestFacts, allowed: boolean, reason: Reason, rule: string | undefined, ruleSource: string | undefined, detail: string | undefined): Decision {
  const origin = facts.origin
  const echo = policy.allowAll ? '*' : origin
  if (allowed) return decision(true, reason, origin === undefined ? 'no_origin' : 'allowed', rule, ruleSource, false, echo, detail)
  switch (policy.mode) {
    // Served as if allowed, but an Origin that is no serialized origin (non-ASCII, a list,
    // control bytes) is never reflected: no browser sends one, so no browser needs the echo.
    case 'report-only': return decision(false, reason, 'would_deny', rule, ruleSource, false, reflectable(echo) ? echo : undefined, detail)
    case 'headers-only': return decision(false, reason, 'denied', rule, ruleSource, facts.upgrade === true, undefined, detail)
    case 'enforce': return decision(false, reason, 'denied', rule, ruleSource, true, undefined, detail)
  }
}

// Browsers send the same `Access-Control-Request-Headers` string over and over, so the verdict
// on each string is kept per allow set (bounded: cleared when full, so odd strings cannot grow it).
const HEADER_VERDICTS_MAX = 512
const headerVerdicts = new WeakMap<ReadonlySet<string>, Map<string, string | null>>()

/** The first requested header that the policy does not allow, or undefined. */
function firstUnlistedHeader (policy: CompiledPolicy, requested: string): string | undefined {
  const allowHeaders = policy.allowHeaders
  if (allowHeaders === '*') return undefined
  let verdicts = headerVerdicts.get(allowHeaders)
  if (verdicts === undefined) {
    verdicts = new Map()
    headerVerdicts.set(allowHeaders, verdicts)
  }
  const known = verdicts.get(requested)
  if (known !== undefined) return known ?? undefined
  let bad: string | null = null
  for (const part of requested.split(',')) {
    const name = part.trim().toLowerCase()
    if (name === '' || SAFELISTED_HEADERS.has(name) || allowHeaders.has(name)) continue
    bad = name
    break
  }
  if (verdicts.size >= HEADER_VERDICTS_MAX) verdicts.clear()
  verdicts.set(requested, bad)
  return bad ?? undefined
}

function reflectable (echo: string | undefined): boolean {
  return echo === undefined || echo === '*' || echo === 'null' || parseSerializedOrigin(echo) !== undefined
}
