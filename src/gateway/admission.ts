// The first three stages of the pipeline, for HTTP requests and websocket upgrades alike:
// the request-head checks, the judgement (route, policy, decision), and the answers corsgate
// gives itself — preflights, enforced denials and its own errors. What admission answers never
// reaches a plugin or the upstream; what it lets through is forwarded or tunnelled after the
// user's plugins have run.
import type { IncomingMessage } from 'node:http'
import type { Config } from '../config/schema.js'
import { denialAnswer, errorAnswer, preflightAnswer, type AnswerPlan } from './answers.js'
import type { GatewayContext } from './context.js'
import {
  AuthorityMismatchError, BadPathError, DuplicateHostError, NoRouteError, PayloadTooLargeError, ShuttingDownError,
  TooManyHeadersError, UndecodablePathError, UpgradeRefusedError
} from './errors.js'
import { isEncrypted } from './forwarded.js'
import { decodePath, isAmbiguousPath, judgeRequest, requestKind, type JudgeContext, type Judgement } from './judge.js'

/** The methods corsgate proxies (those @fastify/http-proxy forwards by default); others get 404. */
export const PROXIED_METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'] as const
const PROXIED = new Set<string>(PROXIED_METHODS)

export interface Admission {
  readonly state: Judgement
  /** corsgate's own answer; undefined when the request goes on to the plugins and the upstream. */
  readonly answer: AnswerPlan | undefined
}

const kAdmission = Symbol('corsgate.admission')
type AdmittedRequest = IncomingMessage & { [kAdmission]?: Admission }

/**
 * Admits a request once (the result is kept on the request, so every later stage — Fastify's
 * router, corsgate's hooks — reads the same judgement). `upgrade`: an HTTP upgrade request.
 */
export function admit (ctx: Pick<GatewayContext, 'config' | 'store' | 'routes' | 'isClosing'>, req: IncomingMessage, upgrade: boolean): Admission {
  const known = (req as AdmittedRequest)[kAdmission]
  if (known !== undefined) return known
  if (req.httpVersionMajor === 2) authorityAsHost(req)
  const kind = requestKind({ method: req.method!, headers: req.headers }, upgrade)
  const state = judgeRequest(ctx, { method: req.method!, url: req.url!, headers: req.headers, encrypted: isEncrypted(req) }, kind)
  const admission: Admission = { state, answer: ctx.isClosing() ? errorAnswer(new ShuttingDownError(), state) : corsgateAnswer(ctx.config, req, state, true) }
  ;(req as AdmittedRequest)[kAdmission] = admission
  return admission
}

/**
 * Admission inside someone else's Fastify app (`corsgate/fastify`): the same head checks,
 * judgement and answers, but the app routes, limits bodies and shuts down itself. `policy`
 * names the policy when the app chooses it (else the config's routes do).
 */
export function admitEmbedded (ctx: Pick<GatewayContext, 'config' | 'store' | 'routes'> & Pick<JudgeContext, 'unroutedPolicy'>, req: IncomingMessage, upgrade: boolean, policy?: string): Admission {
  const known = (req as AdmittedRequest)[kAdmission]
  if (known !== undefined) return known
  const kind = requestKind({ method: req.method!, headers: req.headers }, upgrade)
  const state = judgeRequest(ctx, { method: req.method!, url: req.url!, headers: req.headers, encrypted: isEncrypted(req) }, kind, policy)
  const admission: Admission = { state, answer: corsgateAnswer(ctx.config, req, state, false) }
  ;(req as AdmittedRequest)[kAdmission] = admission
  return admission
}

/**
 * An HTTP/2 request names its host in `:authority` (RFC 9113 §8.3.1), which a client may send
 * instead of `Host`: it becomes the `Host` that routes, judges same-origin and is forwarded.
 * A request with both, disagreeing, is refused in the head checks.
 */
function authorityAsHost (req: IncomingMessage): void {
  const authority = req.headers[':authority']
  if (req.headers.host === undefined && typeof authority === 'string') req.headers.host = authority
}

/** The admission already made for `req`, if any. */
export function admitted (req: IncomingMessage): Admission | undefined {
  return (req as AdmittedRequest)[kAdmission]
}

/**
 * corsgate's own answer to a judged request, or undefined to let it through. `proxied`: the
 * standalone gateway, which also routes, limits bodies and refuses upgrades a route does not
 * take; inside an app those are the app's.
 */
function corsgateAnswer (config: Pick<Config, 'server'>, req: IncomingMessage, state: Judgement, proxied: boolean): AnswerPlan | undefined {
  // Refused before the judgement counts: no CORS headers for a head that cannot be trusted.
  const headError = requestHeadError(req.rawHeaders, config)
  if (headError !== undefined) return errorAnswer(headError, undefined)
  if (isAmbiguousPath(state.path)) return errorAnswer(new BadPathError(), state)
  if (state.path.includes('%') && decodePath(state.path) === undefined) return errorAnswer(new UndecodablePathError(), state)
  if (state.kind === 'websocket') return upgradeAnswer(req, state, proxied)
  if (state.decision.reject) return denialAnswer(state)
  // Preflights are answered here and never forwarded (SPEC "Preflight").
  if (state.kind === 'preflight') return preflightAnswer(state, req.headers)
  if (!proxied) return undefined
  if (state.route === undefined || !PROXIED.has(req.method!)) return errorAnswer(new NoRouteError(), state)
  const length = req.headers['content-length']
  const limit = config.server.bodyLimit
  if (length !== undefined && Number(length) > limit) return errorAnswer(new PayloadTooLargeError(String(limit)), state)
  return undefined
}

function upgradeAnswer (req: IncomingMessage, state: Judgement, proxied: boolean): AnswerPlan | undefined {
  // Only websocket upgrades are proxied: `h2c` and others would hand the connection to a
  // protocol nothing here judges.
  const upgrade = req.headers.upgrade
  if (req.method !== 'GET' || typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') {
    return errorAnswer(new UpgradeRefusedError('only GET websocket upgrades are accepted'), state)
  }
  if (state.decision.reject) return denialAnswer(state)
  if (!proxied) return undefined
  if (state.route === undefined) return errorAnswer(new NoRouteError(), state)
  if (!state.route.websocket) return errorAnswer(new UpgradeRefusedError('websocket upgrades are not enabled on this route'), state)
  return undefined
}

/**
 * A request head corsgate refuses although Node's parser accepted it: more header lines than
 * `server.maxHeadersCount` (431), or more than one `Host` (400, RFC 9112 §3.2: the route is
 * chosen by Host, and Node silently keeps only the first one).
 */
export function requestHeadError (rawHeaders: readonly string[], config: Pick<Config, 'server'>): Error | undefined {
  let hosts = 0
  let pseudo = 0
  let host: string | undefined
  let authority: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (++hosts > 1) return new DuplicateHostError()
      host = rawHeaders[i + 1]
    } else if (name.charCodeAt(0) === 0x3a) {
      // HTTP/2 pseudo-headers are the request line, not header lines.
      pseudo++
      if (name === ':authority') authority = rawHeaders[i + 1]
    }
  }
  if ((rawHeaders.length / 2) - pseudo > config.server.maxHeadersCount) return new TooManyHeadersError(String(config.server.maxHeadersCount))
  // RFC 9113 §8.3.1: `Host` and `:authority` must name the same host, or the route and the
  // upstream's idea of it could differ.
  if (host !== undefined && authority !== undefined && host.toLowerCase() !== authority.toLowerCase()) return new AuthorityMismatchError()
  return undefined
}
