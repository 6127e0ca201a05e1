// The direct forwarding path: an allowed request with no body or a Content-Length body (every
// GET and HEAD, ordinary uploads, OPTIONS without a preflight) goes from Node's `request` event
// straight to undici's `dispatch`, and the upstream's answer straight back into Node's
// response, without Fastify's request, reply and hooks and reply-from's stream plumbing. Same
// upstream choice, headers, CORS headers, errors, metrics and log line as the Fastify path in
// proxy.ts, which keeps what needs more: chunked uploads (counted against the body limit as
// they stream), Socket.IO handshakes on balanced routes (sid sniffing), and the requests
// corsgate answers itself (404, 413, 400 for a path the router cannot decode, 503 draining).
//
// Why: a proxied GET cost 1.3–1.65× the CPU of a bare node:http + undici proxy; Fastify's
// request and reply objects, its hook chain and reply-from's stream plumbing were most of the
// gap (README "Performance").
import { readFileSync } from 'node:fs'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { Agent, type Dispatcher } from 'undici'
import type { Config } from '../config/schema.js'
import { actualHeaders, appendVaryOrigin } from '../policy/headers.js'
import type { CorsState } from './cors.js'
import type { GatewayContext } from './context.js'
import { errorBody } from './errors.js'
import { directRequestId, recordRequest } from './request-log.js'
import type { Route } from './route-table.js'
import { upstreamRequestHeaders, upstreamResponseHeaders } from './upstream-headers.js'
import { clientAddress, cookieValue, engineSid, isEngineHandshake, isRefusal, STICKY_COOKIE } from './upstream-pool.js'

/** The undici agent shared by both forwarding paths: keep-alive pool, TLS always verified. */
export function createUpstreamAgent (config: Config): Agent {
  const ca = config.server.upstreamCaFile === undefined ? undefined : readFileSync(config.server.upstreamCaFile)
  return new Agent({
    connections: config.server.upstreamConnections,
    pipelining: 1,
    // Below the usual upstream keep-alive (Node 5 s, nginx 75 s, Apache 5 s), so we never
    // reuse a socket the upstream is about to close.
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 4_000,
    connect: { rejectUnauthorized: true, ...(ca === undefined ? {} : { ca }) }
  })
}

// The methods @fastify/http-proxy forwarded by default; any other method gets the 404 answer.
export const PROXIED_METHODS: readonly string[] = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']

/** Where requests for one upstream URL go: its origin, and the Host header it is sent. */
interface Target { origin: string, host: string }

/** Picks a route's upstream for a request (upstream-pool.ts): by session, cookie, address or rotation. */
export function pickUpstream (route: Route, req: IncomingMessage, trustProxy: boolean): number {
  if (!route.pool.balanced) return 0
  return route.pool.pick(engineSid(req.url!), cookieValue(req.headers.cookie, STICKY_COOKIE), Date.now(), clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], trustProxy))
}

type ForwarderContext = Pick<GatewayContext, 'config' | 'metrics' | 'logger' | 'isClosing'>

export class Forwarder {
  private readonly targets = new Map<string, Target>()
  private readonly methods = new Set(PROXIED_METHODS)
  readonly trustProxy: boolean
  private readonly bodyLimit: number

  constructor (readonly ctx: ForwarderContext, readonly agent: Agent) {
    this.trustProxy = ctx.config.server.trustProxy
    this.bodyLimit = ctx.config.server.bodyLimit
  }

  /**
   * Forwards a judged request unless it needs the Fastify path; false leaves it to Fastify
   * (which then gives it the answer it always gave).
   */
  forward (req: IncomingMessage, res: ServerResponse, state: CorsState): boolean {
    const route = state.route
    if (route === undefined || state.kind !== 'actual' || state.decision.reject || !this.methods.has(req.method!)) return false
    const headers = req.headers
    // Node's parser has checked Content-Length (one valid number) and that the body is exactly
    // that long; over the limit, Fastify's 413 answers before any of it is read.
    const length = headers['content-length']
    const hasBody = length !== undefined && length !== '0'
    if (headers['transfer-encoding'] !== undefined || (hasBody && Number(length) > this.bodyLimit)) return false
    // A path the router cannot decode gets Fastify's 400 (`frameworkErrors` in app.ts).
    if (state.path.includes('%') && !decodable(state.path)) return false
    if (route.pool.balanced && isEngineHandshake(req.url!)) return false
    const exchange = new Exchange(this, req, res, state, pickUpstream(route, req, this.trustProxy))
    const target = this.target(route.upstreams[exchange.upstream]!)
    this.agent.dispatch({
      origin: target.origin,
      path: req.url!,
      method: req.method as Dispatcher.HttpMethod,
      headers: upstreamRequestHeaders(req, headers, this.trustProxy, target.host),
      // Streamed as it arrives; a client that dies mid-upload aborts the upstream request.
      body: hasBody ? req : null,
      headersTimeout: route.timeoutMs,
      bodyTimeout: route.timeoutMs
    }, exchange)
    return true
  }

  private target (upstream: string): Target {
    let target = this.targets.get(upstream)
    if (target === undefined) {
      const url = new URL(upstream)
      target = { origin: url.origin, host: url.host }
      this.targets.set(upstream, target)
    }
    return target
  }
}

function decodable (path: string): boolean {
  try {
    decodeURIComponent(path)
    return true
  } catch {
    return false
  }
}

/**
 * One request on the direct path, as undici's dispatch handler. The response head is written
 * with the first body byte (or the end), not when the upstream's headers arrive: until then an
 * upstream failure can still be answered with a clean 502, as the Fastify path does.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined
  private status = 0
  private head: IncomingHttpHeaders | undefined
  /** The client went away, or corsgate answered already: what the upstream still sends is dropped. */
  private clientGone = false
  private id: string | undefined
  private readonly started = performance.now()
  private readonly resume = (): void => { this.controller?.resume() }

  constructor (
    private readonly forwarder: Forwarder,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly state: CorsState,
    readonly upstream: number
  ) {
    res.once('close', () => { this.finished() })
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.clientGone) controller.abort(new Error('client closed the connection'))
  }

  onResponseStart (controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // 1xx informational answers (103 Early Hints) are not relayed; the final answer follows.
    if (statusCode < 200) return
    if (statusCode > 599) {
      controller.abort(new Error(`upstream answered with status ${statusCode}`))
      return
    }
    this.status = statusCode
    this.head = this.responseHead(headers)
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.clientGone) return
    if (this.head !== undefined) this.writeHead()
    if (this.clientGone) return
    if (!this.res.write(chunk)) {
      controller.pause()
      this.res.once('drain', this.resume)
    }
  }

  onResponseEnd (): void {
    if (this.clientGone) return
    if (this.head !== undefined) this.writeHead()
    if (!this.clientGone) this.res.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error & { code?: string }): void {
    // The client's connection is gone (a reset mid-upload fails the body stream undici reads).
    if (this.clientGone || this.res.destroyed) return
    const { ctx } = this.forwarder
    const route = this.state.route!
    const timeout = error.code === 'UND_ERR_HEADERS_TIMEOUT'
    ctx.metrics.upstreamErrors.inc({ route: route.label, kind: timeout ? 'timeout' : 'unavailable' })
    // A refused connection takes the upstream out of rotation (passive health).
    if (isRefusal(error)) route.pool.eject(this.upstream)
    ctx.logger.warn({ reqId: this.reqId(), route: route.label, upstream: route.upstreams[this.upstream], error: error.message }, 'upstream error')
    // Part of the body is on its way: all that is left to do is to cut the response short.
    if (this.res.headersSent) {
      this.res.destroy()
      return
    }
    this.head = undefined
    if (timeout) this.sendError(504, 'CORSGATE_UPSTREAM_TIMEOUT', 'upstream did not answer in time')
    else this.sendError(502, 'CORSGATE_UPSTREAM_UNAVAILABLE', 'upstream unavailable')
  }

  /** The upstream's headers as the client gets them, with the policy's CORS headers. */
  private responseHead (upstream: IncomingHttpHeaders): IncomingHttpHeaders {
    const policy = this.state.policy
    const head = upstreamResponseHeaders(upstream, policy.config.stripUpstreamCors)
    this.addCorsHeaders(head)
    return head
  }

  /** What cors.ts `onSend` adds to an actual request's answer. */
  private addCorsHeaders (head: IncomingHttpHeaders): void {
    const { policy, decision } = this.state
    const cors = actualHeaders(policy, decision)
    if (cors !== undefined) Object.assign(head, cors)
    if (policy.varyOrigin) head.vary = appendVaryOrigin(Array.isArray(head.vary) ? head.vary.join(', ') : head.vary)
    // While draining (or with the request unread), no connection is kept alive past this answer.
    if (this.forwarder.ctx.isClosing() || !this.req.complete) head.connection = 'close'
  }

  private writeHead (): void {
    const head = this.head
    this.head = undefined
    try {
      this.res.writeHead(this.status, head)
    } catch (error) {
      // A header Node refuses to write (upstream-headers.ts cleans values, not names).
      this.forwarder.ctx.logger.warn({ reqId: this.reqId(), route: this.state.route!.label, error: (error as Error).message }, 'upstream error')
      this.sendError(502, 'CORSGATE_UPSTREAM_UNAVAILABLE', 'upstream unavailable')
      this.clientGone = true
      this.controller?.abort(error as Error)
    }
  }

  private reqId (): string {
    this.id ??= directRequestId()
    return this.id
  }

  /** corsgate's own error answer, in the shape of errors.ts, with the CORS headers. */
  private sendError (status: number, code: string, message: string): void {
    const body = JSON.stringify(errorBody(status, code, message))
    const head: IncomingHttpHeaders = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) }
    this.addCorsHeaders(head)
    this.res.writeHead(status, head)
    this.res.end(body)
  }

  /** The response is over (sent, or the client went away): abort the upstream side if needed, record. */
  private finished (): void {
    if (!this.res.writableFinished) {
      this.clientGone = true
      this.controller?.abort(new Error('client closed the connection'))
    }
    const { ctx } = this.forwarder
    const logRequests = ctx.logger.isLevelEnabled('info')
    recordRequest(ctx, logRequests, this.state, logRequests ? this.reqId() : '', this.req.method, this.res.statusCode, performance.now() - this.started)
  }
}
