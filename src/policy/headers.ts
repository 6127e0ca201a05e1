// The CORS response header sets (Fetch Standard §3.2.3 "HTTP responses" and §4.8 "CORS-
// preflight fetch"). Values are precomputed per policy; these functions only pick them.
import type { CompiledPolicy } from './compile.js'
import type { Decision } from './decide.js'

// A preflight answer depends on all three request headers; caches must key on them
// (Fetch Standard §3.2.5 "CORS protocol and HTTP caches").
export const PREFLIGHT_VARY = 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers'

export type HeaderSet = Record<string, string>

export interface PreflightRequest {
  /** `Access-Control-Request-Headers`, as sent. */
  requestHeaders: string | undefined
  /** `Access-Control-Request-Private-Network: true` was sent. */
  privateNetwork: boolean
}

/** Headers of an allowed preflight answer (the caller adds nothing but the status). */
export function preflightHeaders (policy: CompiledPolicy, decision: Decision, req: PreflightRequest): HeaderSet {
  const h: HeaderSet = { vary: PREFLIGHT_VARY, 'content-length': '0' }
  if (decision.allowOrigin === undefined) return h
  const v = policy.headerValues
  h['access-control-allow-origin'] = decision.allowOrigin
  if (policy.credentials) h['access-control-allow-credentials'] = 'true'
  h['access-control-allow-methods'] = v.allowMethods
  // `allowHeaders: "*"` echoes the requested list: a literal `*` is ignored by browsers on a
  // credentialed request (Fetch §3.2.3), so echoing works in both cases.
  const allowHeaders = v.allowHeaders ?? req.requestHeaders
  if (allowHeaders !== undefined && allowHeaders !== '') h['access-control-allow-headers'] = allowHeaders
  // A would-deny preflight (report-only) is served for the trial only: with the policy's
  // lasting max-age a browser would keep using it for up to that long after the switch to
  // enforce. Without the header, browsers cache it for 5 s (Fetch §4.8, step "max-age is null").
  if (v.maxAge !== undefined && decision.outcome !== 'would_deny') h['access-control-max-age'] = v.maxAge
  if (req.privateNetwork && policy.privateNetwork) h['access-control-allow-private-network'] = 'true'
  return h
}

/** The CORS headers of an actual (non-preflight) response; empty when none are due. */
export function actualHeaders (policy: CompiledPolicy, decision: Decision): HeaderSet | undefined {
  if (decision.allowOrigin === undefined) return undefined
  const h: HeaderSet = { 'access-control-allow-origin': decision.allowOrigin }
  if (policy.credentials) h['access-control-allow-credentials'] = 'true'
  if (policy.headerValues.exposeHeaders !== undefined) h['access-control-expose-headers'] = policy.headerValues.exposeHeaders
  return h
}

/** `vary` with `Origin` appended unless already there (RFC 9110 §12.5.5: a list, never replaced). */
export function appendVaryOrigin (vary: string | undefined): string {
  if (vary === undefined || vary === '') return 'Origin'
  if (vary.trim() === '*') return vary
  for (const part of vary.split(',')) {
    if (part.trim().toLowerCase() === 'origin') return vary
  }
  return `${vary}, Origin`
}
