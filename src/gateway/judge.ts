// Judgement: which route serves a request, which policy applies, and what it decides. Pure
// over the live snapshot and the route table; no Fastify, no sockets. One function for HTTP
// requests, websocket upgrades, `/explain` and `corsgate check`, so they cannot disagree.
import type { Config } from '../config/schema.js'
import type { CompiledPolicy } from '../policy/compile.js'
import { decide, type Decision } from '../policy/decide.js'
import type { PolicySnapshot } from '../policy/snapshot.js'
import { UnknownPolicyError } from './errors.js'
import type { Route, RouteTable } from './route-table.js'

export type RequestKind = 'preflight' | 'actual' | 'websocket'

export interface Judgement {
  readonly route: Route | undefined
  readonly policy: CompiledPolicy
  readonly decision: Decision
  readonly kind: RequestKind
  readonly origin: string | undefined
  /** The request path, without the query. */
  readonly path: string
}

/** What judgement reads of a request: Node's `IncomingMessage` has it, and so does a query. */
export interface RequestFacts {
  method: string
  url: string
  headers: Record<string, string | string[] | undefined>
  encrypted: boolean
}

export interface JudgeContext {
  config: Pick<Config, 'server'>
  store: { readonly snapshot: PolicySnapshot }
  routes: RouteTable
  /**
   * The policy that judges a request no route serves, refusing to judge (UnknownPolicyError)
   * when it is missing. Unset: `default`, or else the first policy, which is safe only where
   * such a request is answered 404 and never forwarded (the standalone gateway).
   */
  unroutedPolicy?: string
}

/** A preflight is an OPTIONS with `Origin` and `Access-Control-Request-Method` (Fetch §4.8). */
export function requestKind (req: Pick<RequestFacts, 'method' | 'headers'>, upgrade: boolean): RequestKind {
  if (upgrade) return 'websocket'
  const h = req.headers
  return req.method === 'OPTIONS' && h.origin !== undefined && h['access-control-request-method'] !== undefined ? 'preflight' : 'actual'
}

/** `policyName`: the policy the embedding app chose for this request, instead of the route's. */
export function judgeRequest (ctx: JudgeContext, req: RequestFacts, kind: RequestKind, policyName?: string): Judgement {
  const q = req.url.indexOf('?')
  const path = q < 0 ? req.url : req.url.slice(0, q)
  const host = singleHeader(req.headers.host)
  const route = ctx.routes.resolve(host, routingPath(path))
  const name = policyName ?? (route === undefined ? ctx.unroutedPolicy : undefined)
  const policy = name === undefined ? policyFor(ctx.store.snapshot, route) : namedPolicy(ctx.store.snapshot, name)
  const origin = singleHeader(req.headers.origin)
  const now = policy.allow.nextExpiry === undefined && policy.deny.nextExpiry === undefined ? 0 : Date.now()
  const preflight = kind === 'preflight'
  const decision: Decision = decide(policy, {
    origin,
    selfOrigin: origin === undefined ? undefined : selfOrigin(req, host, ctx.config.server.trustProxy),
    method: preflight ? singleHeader(req.headers['access-control-request-method']) ?? '' : req.method,
    requestHeaders: preflight ? singleHeader(req.headers['access-control-request-headers']) : undefined,
    now,
    upgrade: kind === 'websocket'
  })
  return { route, policy, decision, kind, origin, path }
}

function policyFor (snapshot: PolicySnapshot, route: Route | undefined): CompiledPolicy {
  const policies = snapshot.policies
  // A request no route serves (404) is judged by the `default` policy, or the first one.
  const named = route === undefined ? policies.get('default') : policies.get(route.policy)
  return named ?? policies.values().next().value!
}

/** Never another policy in its place (that could allow what the named one refuses). */
function namedPolicy (snapshot: PolicySnapshot, name: string): CompiledPolicy {
  const policy = snapshot.policies.get(name)
  if (policy === undefined) throw new UnknownPolicyError(name)
  return policy
}

/**
 * Node joins most repeated headers with ", ", which no pattern matches; an array is a header
 * Node keeps as a list: two values are judged as one invalid value.
 */
export function singleHeader (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

function selfOrigin (req: RequestFacts, host: string | undefined, trustProxy: boolean): string | undefined {
  let scheme = req.encrypted ? 'https' : 'http'
  let authority = host
  if (trustProxy) {
    const proto = singleHeader(req.headers['x-forwarded-proto'])
    if (proto !== undefined) scheme = proto.split(',')[0]!.trim()
    const fwdHost = singleHeader(req.headers['x-forwarded-host'])
    if (fwdHost !== undefined) authority = fwdHost.split(',')[0]!.trim()
  }
  return authority === undefined ? undefined : `${scheme}://${authority}`
}

// Paths the upstream would resolve to somewhere else than the route we judged: dot-segments,
// encoded dots and slashes, backslashes. Refused rather than normalised, as Envoy's
// `path_with_escaped_slashes_action: REJECT_REQUEST` does. `..;/` is a dot-segment to Tomcat
// and Jetty, which drop `;` path parameters before resolving.
// A leading `//` is a scheme-relative URL to an upstream that parses the request target with
// WHATWG `URL` (`//public/admin`: host `public`, path `/admin`) while corsgate judged `/public/admin`.
const AMBIGUOUS_PATH = /(?:^|\/)\.\.?(?:[/;]|$)|%2e|%2f|%5c|\\|^\/\//i

/**
 * True for a path refused with 400 (`CORSGATE_BAD_PATH`) rather than judged: `AMBIGUOUS_PATH`,
 * or a segment that starts with `..` once decoded, whatever follows (`..%00`, `..%20`, `..%09`,
 * `..%e2%80%8b`): upstreams that strip such characters (Jetty's CVE-2021-34429, Windows file
 * servers trimming spaces) read a dot-segment there.
 */
export function isAmbiguousPath (path: string): boolean {
  if (AMBIGUOUS_PATH.test(path)) return true
  const decoded = path.includes('%') ? decodePath(path) ?? path : path
  return decoded.includes('/..')
}

/** The percent-decoded path, or undefined when it does not decode (a bad escape, bad UTF-8). */
export function decodePath (path: string): string | undefined {
  try {
    return decodeURIComponent(path)
  } catch {
    return undefined
  }
}

const UNRESERVED_ESCAPE = /%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[Dd]|5[Ff]|7[Ee])/g

/**
 * The path as a backend reads it, for choosing the route (never for forwarding: the upstream
 * gets the path as sent). Runs of `/` are merged, as nginx, PHP and most routers do, and
 * percent-encoded unreserved characters are decoded (RFC 3986 §6.2.2.2: `/%61dmin` is
 * `/admin` to every backend). Without this, `//admin/` or `/%61dmin/` would be judged by a
 * catch-all route's policy and served as `/admin/` by the upstream.
 */
export function routingPath (path: string): string {
  let p = path
  if (p.includes('//')) p = p.replace(/\/{2,}/g, '/')
  if (p.includes('%')) p = p.replace(UNRESERVED_ESCAPE, (escape) => String.fromCharCode(parseInt(escape.slice(1), 16)))
  return p
}
