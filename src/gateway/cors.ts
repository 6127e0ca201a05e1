// The CORS layer. Every request is judged once, from Node's `request` event, before any body
// is read and before the upstream is contacted (`judgeEarly`); allowed preflights and enforced
// denials are answered right there (`answerEarly`), and allowed requests are forwarded by
// forward.ts, which adds the CORS headers to the upstream's answer. What is left reaches
// Fastify: `onRequest` answers it from the same judgement (503 draining, 400 bad path, 404 no
// route, 413, report-only preflights) and `onSend` gives those answers their CORS headers.
//
// Why not @fastify/cors: its origin option cannot express our grammar without a per-request
// delegate, it registers an `OPTIONS *` route that collides with a proxy mounted at `/`, and it
// runs in Fastify's hook chain, which corsgate's answers skip for speed (README "Performance").
// Our header values are precomputed per policy (src/policy/headers.ts), so this layer only
// picks them.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply, onRequestHookHandler, onSendHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { RequestKind } from '../admin/metrics.js'
import type { CompiledPolicy } from '../policy/compile.js'
import { decide, type Decision } from '../policy/decide.js'
import { actualHeaders, appendVaryOrigin, preflightHeaders, PREFLIGHT_VARY } from '../policy/headers.js'
import type { PolicyStore } from '../sources/policy-store.js'
import { BadPathError, NoRouteError, PayloadTooLargeError, ShuttingDownError } from './errors.js'
import { isEncrypted } from './forwarded.js'
import { directRequestId, recordRequest } from './request-log.js'
import type { Route } from './route-table.js'
import type { GatewayContext } from './context.js'

export interface CorsState {
  readonly route: Route | undefined
  readonly policy: CompiledPolicy
  readonly decision: Decision
  readonly kind: RequestKind
  readonly origin: string | undefined
  /** The request path, without the query. */
  readonly path: string
}

declare module 'fastify' {
  interface FastifyRequest {
    corsgate: CorsState | null
  }
}

export type CorsOptions = GatewayContext

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
 * servers trimming spaces) read a dot-segment there. The rule @fastify/reply-from applied.
 */
export function isAmbiguousPath (path: string): boolean {
  if (AMBIGUOUS_PATH.test(path)) return true
  // An undecodable path is refused with 400 by the router (app.ts `frameworkErrors`).
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

/** Judges one request: route, policy, decision. Shared by HTTP requests and websocket upgrades. */
export function judgeRequest (opts: Pick<CorsOptions, 'config' | 'store' | 'routes'>, req: {
  method: string
  url: string
  headers: Record<string, string | string[] | undefined>
  encrypted: boolean
}, kind: RequestKind): CorsState {
  const q = req.url.indexOf('?')
  const path = q < 0 ? req.url : req.url.slice(0, q)
  const host = singleHeader(req.headers.host)
  const route = opts.routes.resolve(host, routingPath(path))
  const policy = policyFor(opts.store, route)
  const origin = singleHeader(req.headers.origin)
  const trustProxy = opts.config.server.trustProxy
  const now = policy.allow.nextExpiry === undefined && policy.deny.nextExpiry === undefined ? 0 : Date.now()
  const preflight = kind === 'preflight'
  const decision: Decision = decide(policy, {
    origin,
    selfOrigin: origin === undefined ? undefined : selfOrigin(req, host, trustProxy),
    method: preflight ? singleHeader(req.headers['access-control-request-method']) ?? '' : req.method,
    requestHeaders: preflight ? singleHeader(req.headers['access-control-request-headers']) : undefined,
    now,
    upgrade: kind === 'websocket'
  })
  return { route, policy, decision, kind, origin, path }
}

function policyFor (store: PolicyStore, route: Route | undefined): CompiledPolicy {
  const policies = store.snapshot.policies
  // A request no route serves (404) is judged by the `default` policy, or the first one.
  const named = route === undefined ? policies.get('default') : policies.get(route.policy)
  return named ?? policies.values().next().value!
}

function singleHeader (value: string | string[] | undefined): string | undefined {
  // Node joins most repeated headers with ", ", which no pattern matches; an array means a
  // header Node keeps as a list: treat two values as one invalid value.
  return Array.isArray(value) ? value.join(', ') : value
}

function selfOrigin (req: { headers: Record<string, string | string[] | undefined>, encrypted: boolean }, host: string | undefined, trustProxy: boolean): string | undefined {
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

/** Sends the 403 of a denied request or preflight: no `Access-Control-Allow-*` headers. */
function sendDenial (reply: FastifyReply, state: CorsState): void {
  reply.code(403)
    .header('content-type', 'application/json; charset=utf-8')
    .header('vary', state.kind === 'preflight' ? PREFLIGHT_VARY : 'Origin')
    .send(JSON.stringify({ error: 'cors_denied', reason: state.decision.reason }))
}

async function corsPlugin (app: FastifyInstance, opts: CorsOptions): Promise<void> {
  const { config } = opts
  const bodyLimit = config.server.bodyLimit
  // Decided once: no allocation for the request log line when info is off.
  const logRequests = opts.logger.isLevelEnabled('info')

  app.decorateRequest('corsgate', null)

  const onRequest: onRequestHookHandler = function (request, reply, done) {
    const raw = request.raw
    const isPreflight = raw.method === 'OPTIONS' && raw.headers.origin !== undefined && raw.headers['access-control-request-method'] !== undefined
    const state = (raw as JudgedRequest)[kJudged] ?? judgeRequest(opts, { method: raw.method!, url: raw.url!, headers: raw.headers, encrypted: isEncrypted(raw) }, isPreflight ? 'preflight' : 'actual')
    request.corsgate = state

    if (opts.isClosing()) return reply.send(new ShuttingDownError())
    if (isAmbiguousPath(state.path)) return reply.send(new BadPathError())
    if (state.decision.reject) return sendDenial(reply, state)

    if (isPreflight) {
      // Preflights are answered here and never forwarded (SPEC.md "Preflight").
      reply.code(state.policy.preflightStatus)
        .headers(preflightHeaders(state.policy, state.decision, {
          requestHeaders: singleHeader(raw.headers['access-control-request-headers']),
          privateNetwork: raw.headers['access-control-request-private-network'] === 'true'
        }))
        .send()
      return
    }
    if (state.route === undefined) return reply.send(new NoRouteError())
    const length = raw.headers['content-length']
    if (length !== undefined && Number(length) > bodyLimit) return reply.send(new PayloadTooLargeError(String(bodyLimit)))
    done()
  }

  const onSend: onSendHookHandler<unknown> = function (request, reply, payload, done) {
    // While draining, no connection is kept alive past its current response.
    if (opts.isClosing()) reply.header('connection', 'close')
    const state = request.corsgate
    if (state === null || (reply.statusCode === 403 && state.decision.reject)) return done(null, payload)
    if (state.kind === 'actual') {
      const headers = actualHeaders(state.policy, state.decision)
      if (headers !== undefined) reply.headers(headers)
      if (state.policy.varyOrigin) reply.header('vary', appendVaryOrigin(headerString(reply.getHeader('vary'))))
    } else if (state.kind === 'preflight' && reply.statusCode >= 400) {
      // A preflight corsgate could not answer (400 bad path, 503 draining): the error still
      // carries the allowed origin's headers, like every response corsgate makes itself.
      const headers = actualHeaders(state.policy, state.decision)
      if (headers !== undefined) reply.headers(headers)
      reply.header('vary', PREFLIGHT_VARY)
    }
    done(null, payload)
  }

  app.addHook('onRequest', onRequest)
  app.addHook('onSend', onSend)
  app.addHook('onResponse', function (request, reply, done) {
    const state = request.corsgate
    if (state === null) return done()
    recordRequest(opts, logRequests, state, request.id, request.raw.method, reply.statusCode, reply.elapsedTime)
    done()
  })
}

/** The judgement `judgeEarly` made, handed to `onRequest` so a request is judged once. */
const kJudged = Symbol('corsgate.judged')
type JudgedRequest = IncomingMessage & { [kJudged]?: CorsState }

/**
 * Judges a request straight from Node's `request` event, before Fastify builds a request and a
 * reply and runs its hook chain, for `answerEarly` and forward.ts to act on; `onRequest` reuses
 * the judgement. Undefined while shutting down or for an ambiguous path: those answers are
 * Fastify's. The caller has already checked the request head (request-head.ts).
 */
export function judgeEarly (opts: CorsOptions, req: IncomingMessage): CorsState | undefined {
  if (opts.isClosing()) return undefined
  const headers = req.headers
  const isPreflight = req.method === 'OPTIONS' && headers.origin !== undefined && headers['access-control-request-method'] !== undefined
  const state = judgeRequest(opts, { method: req.method!, url: req.url!, headers, encrypted: isEncrypted(req) }, isPreflight ? 'preflight' : 'actual')
  ;(req as JudgedRequest)[kJudged] = state
  return isAmbiguousPath(state.path) ? undefined : state
}

/**
 * Answers an allowed preflight or an enforced denial without Fastify: a status, a few
 * precomputed headers and at most a small JSON body (through the hooks a preflight cost 2.2×
 * a bare Fastify 204 route; see README "Performance"). Same status, headers, body, metrics and
 * log line as `onRequest` gives. False for everything else (allowed requests, report-only and
 * headers-only denials).
 */
export function answerEarly (opts: CorsOptions, req: IncomingMessage, res: ServerResponse, state: CorsState): boolean {
  const started = performance.now()
  let status: number
  if (state.decision.reject) {
    // As sendDenial(): 403, no Access-Control-Allow-* headers.
    const body = JSON.stringify({ error: 'cors_denied', reason: state.decision.reason })
    status = 403
    res.writeHead(403, { 'content-type': 'application/json; charset=utf-8', vary: state.kind === 'preflight' ? PREFLIGHT_VARY : 'Origin', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  } else if (state.kind === 'preflight' && state.decision.outcome === 'allowed') {
    const headers = req.headers
    status = state.policy.preflightStatus
    res.writeHead(status, preflightHeaders(state.policy, state.decision, {
      requestHeaders: singleHeader(headers['access-control-request-headers']),
      privateNetwork: headers['access-control-request-private-network'] === 'true'
    }))
    res.end()
  } else {
    return false
  }
  const logRequests = opts.logger.isLevelEnabled('info')
  recordRequest(opts, logRequests, state, logRequests ? directRequestId() : '', req.method, status, performance.now() - started)
  return true
}

function headerString (value: string | number | string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  return Array.isArray(value) ? value.join(', ') : String(value)
}

export const cors = fp(corsPlugin, { name: 'corsgate-cors', fastify: '5.x' })

