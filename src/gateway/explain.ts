// `/explain` and `corsgate check`: the gateway's own judgement for a hypothetical request,
// with the headers it would send. Same code path as a live request (judgeRequest).
import type { Config } from '../config/schema.js'
import { actualHeaders, appendVaryOrigin, preflightHeaders, PREFLIGHT_VARY, type HeaderSet } from '../policy/headers.js'
import type { PolicyStore } from '../sources/policy-store.js'
import { judgeRequest } from './judge.js'
import type { RouteTable } from './route-table.js'

export interface ExplainQuery {
  origin?: string | undefined
  method?: string | undefined
  /** Request headers the browser would list in `Access-Control-Request-Headers`. */
  headers?: readonly string[] | undefined
  path?: string | undefined
  host?: string | undefined
}

export interface Explanation {
  allowed: boolean
  /** What the gateway does: allowed, denied, would_deny (report-only), no_origin, same_origin. */
  decision: string
  reason: string
  /** The refused header (`header_not_allowed`) or method (`method_not_allowed`). */
  detail: string | null
  rule: string | null
  ruleSource: string | null
  kind: 'preflight' | 'actual'
  policy: string
  mode: string
  route: string | null
  upstream: string | null
  status: number | 'forwarded'
  headers: HeaderSet
}

const SIMPLE_METHODS = new Set(['GET', 'HEAD', 'POST'])

/** Inside an app (`corsgate/fastify`): the app routes, and may name the policy itself. */
export interface EmbeddedExplain {
  policy?: string | undefined
}

/** A browser preflights a non-simple method or any listed header; we judge what it would send. */
export function explain (opts: { config: Config, store: PolicyStore, routes: RouteTable }, q: ExplainQuery, embedded?: EmbeddedExplain): Explanation {
  const method = (q.method ?? 'GET').toUpperCase()
  const listed = (q.headers ?? []).filter((h) => h.trim() !== '')
  // An empty origin means "no Origin header", for `check --origin ""` and `/explain?origin=` alike.
  const origin = q.origin === '' ? undefined : q.origin
  const preflight = origin !== undefined && (!SIMPLE_METHODS.has(method) || listed.length > 0)
  const headers: Record<string, string> = {}
  if (q.host !== undefined) headers.host = q.host
  if (origin !== undefined) headers.origin = origin
  if (preflight) {
    headers['access-control-request-method'] = method
    if (listed.length > 0) headers['access-control-request-headers'] = listed.join(',').toLowerCase()
  }
  const state = judgeRequest(opts, { method: preflight ? 'OPTIONS' : method, url: q.path ?? '/', headers, encrypted: false }, preflight ? 'preflight' : 'actual', embedded?.policy)
  const { decision, policy, route } = state
  let sent: HeaderSet
  let status: number | 'forwarded'
  if (decision.reject) {
    status = 403
    sent = { vary: preflight ? PREFLIGHT_VARY : 'Origin' }
  } else if (preflight) {
    status = policy.preflightStatus
    sent = preflightHeaders(policy, decision, { requestHeaders: headers['access-control-request-headers'], privateNetwork: false })
  } else {
    status = route === undefined && embedded === undefined ? 404 : 'forwarded'
    sent = { ...actualHeaders(policy, decision) }
    if (policy.varyOrigin) sent.vary = appendVaryOrigin(undefined)
  }
  return {
    allowed: decision.allowed,
    decision: decision.outcome,
    reason: decision.reason,
    detail: decision.detail ?? null,
    rule: decision.rule ?? null,
    ruleSource: decision.ruleSource ?? null,
    kind: preflight ? 'preflight' : 'actual',
    policy: policy.name,
    mode: policy.mode,
    route: route?.label ?? null,
    upstream: route?.upstream ?? null,
    status,
    headers: sent
  }
}
