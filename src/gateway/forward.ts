// Forwarding: an allowed request goes from Node's `request` event straight to undici's
// `dispatch`, its body streamed as it arrives, and the upstream's answer straight back into
// Node's response. Fastify is not on this path: it answers what corsgate refuses or cannot
// route (cors.ts `onRequest`, app.ts), and `forward` leaves exactly those requests to it.
//
// Why not @fastify/reply-from (or @fastify/http-proxy on top of it): a proxied GET through
// Fastify's request, reply and hooks and reply-from's response stream cost 1.3–1.65× the CPU of
// a bare node:http + undici proxy; this path costs about the same as that floor (README
// "Performance"). undici still does the HTTP work: pooling, keep-alive, parsing, timeouts.
import { readFileSync } from 'node:fs'
import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { Agent, type Dispatcher } from 'undici'
import type { Config } from '../config/schema.js'
import { actualHeaders, appendVaryOrigin } from '../policy/headers.js'
import { decodePath, type CorsState } from './cors.js'
import type { GatewayContext } from './context.js'
import { errorBody, PayloadTooLargeError } from './errors.js'
import { forwarded } from './forwarded.js'
import { directRequestId, recordRequest } from './request-log.js'
import { pickUpstream } from './route-table.js'
import { upstreamRequestHeaders, upstreamResponseHeaders } from './upstream-headers.js'
import { isEngineHandshake, isRefusal, SidSniffer, stickyCookie } from './upstream-pool.js'

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

// The methods @fastify/http-proxy forwards by default; any other method gets the 404 answer.
const PROXIED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'])

/** Where requests for one upstream URL go: its origin, and the Host header it is sent. */
interface Target { origin: string, host: string }

type ForwarderContext = Pick<GatewayContext, 'config' | 'metrics' | 'logger' | 'isClosing'>

export class Forwarder {
  private readonly targets = new Map<string, Target>()
  readonly trustProxy: boolean
  private readonly bodyLimit: number

  constructor (readonly ctx: ForwarderContext, readonly agent: Agent) {
    this.trustProxy = ctx.config.server.trustProxy
    this.bodyLimit = ctx.config.server.bodyLimit
  }

  /**
   * Forwards a judged, allowed request. False for what Fastify answers instead: no route, a
   * preflight or denial, a method corsgate does not proxy, a Content-Length over the body
   * limit, a path the router cannot decode.
   */
  forward (req: IncomingMessage, res: ServerResponse, state: CorsState): boolean {
    const route = state.route
    if (route === undefined || state.kind !== 'actual' || state.decision.reject || !PROXIED_METHODS.has(req.method!)) return false
    const headers = req.headers
    // Node's parser has checked the framing: one valid Content-Length and a body exactly that
    // long, or chunked. Over the limit by Content-Length, the 413 comes before any byte is read.
    const length = headers['content-length']
    if (length !== undefined && Number(length) > this.bodyLimit) return false
    // A path the router cannot decode gets Fastify's 400 (`frameworkErrors` in app.ts).
    if (state.path.includes('%') && decodePath(state.path) === undefined) return false
    const handshake = route.pool.balanced && isEngineHandshake(req.url!)
    const exchange = new Exchange(this, req, res, state, pickUpstream(route, req, this.trustProxy), handshake)
    const target = this.target(route.upstreams[exchange.upstream]!)
    this.agent.dispatch({
      origin: target.origin,
      path: req.url!,
      method: req.method as Dispatcher.HttpMethod,
      headers: upstreamRequestHeaders(req, this.trustProxy, target.host),
      // Streamed as it arrives; a client that dies mid-upload aborts the upstream request.
      body: headers['transfer-encoding'] !== undefined ? Readable.from(limited(req, this.bodyLimit), { objectMode: false }) : length !== undefined && length !== '0' ? req : null,
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

/** A chunked body, passed on as it arrives until it passes `limit` bytes. */
async function * limited (req: IncomingMessage, limit: number): AsyncGenerator<Buffer> {
  let seen = 0
  // Not destroyed when the limit stops the loop: the 413 still has to go out on its socket.
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    seen += chunk.length
    if (seen > limit) throw new PayloadTooLargeError(String(limit))
    yield chunk
  }
}

function isSecure (req: IncomingMessage, trustProxy: boolean): boolean {
  return forwarded(req, trustProxy).proto.split(',')[0]!.trim() === 'https'
}

/**
 * One forwarded request, as undici's dispatch handler. The response head is written with the
 * first body byte (or the end), not when the upstream's headers arrive: until then an upstream
 * failure can still be answered with a clean 502 rather than a cut response.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined
  private status = 0
  private head: IncomingHttpHeaders | undefined
  /** The client went away, or corsgate answered already: what the upstream still sends is dropped. */
  private clientGone = false
  private id: string | undefined
  /** Reads the engine.io session id out of a handshake's answer (balanced routes only). */
  private sniffer: SidSniffer | undefined
  private readonly started = performance.now()
  /** Set while the client is not reading: it is cut after the route's timeout (see `onResponseData`). */
  private stalled: NodeJS.Timeout | undefined
  private readonly resume = (): void => {
    clearTimeout(this.stalled)
    this.stalled = undefined
    this.controller?.resume()
  }

  constructor (
    private readonly forwarder: Forwarder,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly state: CorsState,
    readonly upstream: number,
    private readonly handshake: boolean
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
    this.sniffer?.look(chunk)
    if (this.head !== undefined) this.writeHead()
    if (this.clientGone) return
    if (!this.res.write(chunk)) {
      controller.pause()
      this.res.once('drain', this.resume)
      // A client that stops reading would hold the upstream connection (and the upstream's
      // response) forever: the route's timeout applies to it as to a silent upstream.
      this.stalled = setTimeout(() => {
        this.forwarder.ctx.logger.warn({ reqId: this.reqId(), route: this.state.route!.label }, 'client stopped reading: response cut')
        this.res.destroy()
      }, this.state.route!.timeoutMs)
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
    if (error instanceof PayloadTooLargeError) {
      ctx.metrics.upstreamErrors.inc({ route: route.label, kind: 'body_too_large' })
      if (this.res.headersSent) this.res.destroy()
      else this.sendError(413, error.code, error.message)
      return
    }
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
    if (this.handshake) this.pinSession(head)
    return head
  }

  /**
   * Socket.IO stickiness (upstream-pool.ts): the handshake's answer names the session, which is
   * remembered with its upstream, and a cookie names the upstream for clients this process
   * does not know (a restart, another replica).
   */
  private pinSession (head: IncomingHttpHeaders): void {
    const route = this.state.route!
    const upstream = this.upstream
    const cookie = stickyCookie(route.pool.keys[upstream]!, route.path, isSecure(this.req, this.forwarder.trustProxy))
    const prior: string | string[] | undefined = head['set-cookie']
    head['set-cookie'] = prior === undefined ? [cookie] : Array.isArray(prior) ? [...prior, cookie] : [prior, cookie]
    this.sniffer = new SidSniffer((sid) => { route.pool.learn(sid, upstream) })
  }

  /** The CORS headers of an actual request's answer (as cors.ts `onSend` gives corsgate's own). */
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
    // The reason phrase given: a `writeHead` that threw has left the upstream's behind.
    this.res.writeHead(status, STATUS_CODES[status], head)
    this.res.end(body)
  }

  /** The response is over (sent, or the client went away): abort the upstream side if needed, record. */
  private finished (): void {
    clearTimeout(this.stalled)
    if (!this.res.writableFinished) {
      this.clientGone = true
      this.controller?.abort(new Error('client closed the connection'))
    }
    const { ctx } = this.forwarder
    const logRequests = ctx.logger.isLevelEnabled('info')
    // 499 (nginx's "client closed request") when the client left before any answer.
    const status = this.res.headersSent ? this.res.statusCode : 499
    recordRequest(ctx, logRequests, this.state, logRequests ? this.reqId() : '', this.req.method, status, performance.now() - this.started)
  }
}
