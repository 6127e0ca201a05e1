// Forwarding an allowed request to its upstream with undici's `dispatch`: the body streamed as
// it arrives, the upstream's answer streamed back with flow control, and the upstream's failures
// turned into corsgate's answers. Where the answer goes is a sink: straight onto Node's response
// (`RawSink`, for routes no plugin watches) or through Fastify's reply (`ReplySink`), so that
// plugins' `onSend` hooks see it. Either way the same rules apply (upstream-request.ts,
// answers.ts); undici does the HTTP work: pooling, keep-alive, parsing, timeouts.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { FastifyReply } from 'fastify'
import { addCorsHeaders, errorAnswer, writeAnswer, type AnswerPlan } from './answers.js'
import { pickUpstream, upstreamAnswered, upstreamFailed } from './balance/balancer.js'
import type { GatewayContext } from './context.js'
import { PayloadTooLargeError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js'
import { forwarded } from './forwarded.js'
import type { Judgement } from './judge.js'
import { directRequestId, recordRequest } from './request-log.js'
import type { UpstreamRules } from './upstream-request.js'
import { upstreamResponseHeaders } from './upstream-request.js'

type ForwarderContext = Pick<GatewayContext, 'config' | 'metrics' | 'logger' | 'isClosing'>

/** Where an upstream's answer (or corsgate's answer in its place) is written. */
export interface AnswerSink {
  /** The head: the upstream's status and headers, filtered, without CORS headers yet. False when it could not be written. */
  head: (status: number, headers: IncomingHttpHeaders) => boolean
  /** False when the client is not keeping up: `onDrain` says when to go on. */
  write: (chunk: Buffer) => boolean
  end: () => void
  onDrain: (resume: () => void) => void
  /** corsgate's own answer, before any head was written. */
  answer: (plan: AnswerPlan) => void
  /** After the head: the answer cannot be completed, so it is cut short. */
  cut: () => void
  readonly headSent: boolean
  /** The sink records the request itself (the raw path); Fastify's `onResponse` does otherwise. */
  readonly records: boolean
}

export class Forwarder {
  private readonly bodyLimit: number

  constructor (readonly ctx: ForwarderContext, readonly rules: UpstreamRules, readonly agent: Dispatcher) {
    this.bodyLimit = ctx.config.server.bodyLimit
  }

  /** Forwards a judged, allowed request with a route (admission has refused everything else). */
  forward (req: IncomingMessage, res: ServerResponse, sink: AnswerSink, state: Judgement): void {
    const route = state.route!
    const upstream = pickUpstream(route, req, this.rules.trustProxy)
    const target = this.rules.target(route.upstreams[upstream]!)
    const exchange = new Exchange(this, req, res, sink, state, upstream)
    const headers = req.headers
    const length = headers['content-length']
    this.agent.dispatch({
      origin: target.origin,
      path: req.url!,
      method: req.method as Dispatcher.HttpMethod,
      headers: this.rules.requestHeaders(req, target, false),
      // Streamed as it arrives; a client that dies mid-upload aborts the upstream request.
      body: headers['transfer-encoding'] !== undefined ? Readable.from(limited(req, this.bodyLimit), { objectMode: false }) : length !== undefined && length !== '0' ? req : null,
      headersTimeout: route.timeoutMs,
      bodyTimeout: route.timeoutMs
    }, exchange)
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

/**
 * One forwarded request, as undici's dispatch handler. The response head is written with the
 * first body byte (or the end), not when the upstream's headers arrive: until then an upstream
 * failure can still be answered with a clean 502 rather than a cut response.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined
  private status = 0
  private pendingHead: IncomingHttpHeaders | undefined
  /** The client went away, or corsgate answered already: what the upstream still sends is dropped. */
  private clientGone = false
  private id: string | undefined
  /** Sees the answer's body as it passes (Socket.IO stickiness on balanced routes). */
  private observer: ((chunk: Buffer) => void) | undefined
  private readonly started = performance.now()
  /** Set while the client is not reading: it is cut after the route's timeout. */
  private stalled: NodeJS.Timeout | undefined
  private readonly resume = (): void => {
    clearTimeout(this.stalled)
    this.stalled = undefined
    this.controller?.resume()
  }

  /** Whether the client came over https (to us, or to a trusted proxy in front). */
  private readonly secure = (): boolean => isSecure(this.req, this.forwarder.rules.trustProxy)

  constructor (
    private readonly forwarder: Forwarder,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly sink: AnswerSink,
    private readonly state: Judgement,
    private readonly upstream: number
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
    const head = upstreamResponseHeaders(headers, this.state.policy.config.stripUpstreamCors)
    this.observer = upstreamAnswered(this.state.route!, this.req, this.upstream, head, this.secure)
    this.pendingHead = head
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.clientGone) return
    this.observer?.(chunk)
    if (this.pendingHead !== undefined && !this.writeHead()) return
    if (this.sink.write(chunk)) return
    controller.pause()
    this.sink.onDrain(this.resume)
    // A client that stops reading would hold the upstream connection (and the upstream's
    // response) forever: the route's timeout applies to it as to a silent upstream.
    this.stalled = setTimeout(() => {
      this.forwarder.ctx.logger.warn({ reqId: this.reqId(), route: this.state.route!.label }, 'client stopped reading: response cut')
      this.sink.cut()
    }, this.state.route!.timeoutMs)
  }

  onResponseEnd (): void {
    if (this.clientGone) return
    if (this.pendingHead !== undefined && !this.writeHead()) return
    this.sink.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error & { code?: string }): void {
    // The client's connection is gone (a reset mid-upload fails the body stream undici reads).
    if (this.clientGone || this.res.destroyed) return
    const { ctx } = this.forwarder
    const route = this.state.route!
    if (error instanceof PayloadTooLargeError) {
      ctx.metrics.upstreamErrors.inc({ route: route.label, kind: 'body_too_large' })
      this.fail(error)
      return
    }
    const timeout = error.code === 'UND_ERR_HEADERS_TIMEOUT'
    ctx.metrics.upstreamErrors.inc({ route: route.label, kind: timeout ? 'timeout' : 'unavailable' })
    upstreamFailed(route, this.upstream, error)
    ctx.logger.warn({ reqId: this.reqId(), route: route.label, upstream: route.upstreams[this.upstream], error: error.message }, 'upstream error')
    this.fail(timeout ? new UpstreamTimeoutError() : new UpstreamUnavailableError())
  }

  /** corsgate's error in place of the upstream's answer, or a cut when part of it went out. */
  private fail (error: Error & { statusCode?: number, code?: string }): void {
    this.pendingHead = undefined
    if (this.sink.headSent) this.sink.cut()
    else this.sink.answer(errorAnswer(error, this.state))
  }

  private writeHead (): boolean {
    const head = this.pendingHead!
    this.pendingHead = undefined
    if (this.sink.head(this.status, head)) return true
    // A header Node refuses to write (upstream-request.ts cleans values, not names).
    this.forwarder.ctx.logger.warn({ reqId: this.reqId(), route: this.state.route!.label, error: 'invalid response header' }, 'upstream error')
    this.sink.answer(errorAnswer(new UpstreamUnavailableError(), this.state))
    this.clientGone = true
    this.controller?.abort(new Error('invalid upstream response header'))
    return false
  }

  private reqId (): string {
    this.id ??= directRequestId()
    return this.id
  }

  /** The response is over (sent, or the client went away): abort the upstream side if needed, record. */
  private finished (): void {
    clearTimeout(this.stalled)
    if (!this.res.writableFinished) {
      this.clientGone = true
      this.controller?.abort(new Error('client closed the connection'))
    }
    if (!this.sink.records) return
    const { ctx } = this.forwarder
    const logRequests = ctx.logger.isLevelEnabled('info')
    // 499 (nginx's "client closed request") when the client left before any answer.
    const status = this.res.headersSent ? this.res.statusCode : 499
    recordRequest(ctx, logRequests, this.state, logRequests ? this.reqId() : '', this.req.method, status, performance.now() - this.started)
  }
}

function isSecure (req: IncomingMessage, trustProxy: boolean): boolean {
  return forwarded(req, trustProxy).proto.split(',')[0]!.trim() === 'https'
}

/** Writes the answer straight onto Node's response, with the CORS headers added here. */
export class RawSink implements AnswerSink {
  readonly records = true

  constructor (private readonly req: IncomingMessage, private readonly res: ServerResponse, private readonly state: Judgement, private readonly isClosing: () => boolean) {}

  get headSent (): boolean {
    return this.res.headersSent
  }

  head (status: number, headers: IncomingHttpHeaders): boolean {
    addCorsHeaders(headers as OutgoingHttpHeaders as Record<string, string>, this.state)
    // While draining (or with the request unread), no connection is kept alive past this answer.
    if (this.closeAfter()) headers.connection = 'close'
    try {
      this.res.writeHead(status, headers as OutgoingHttpHeaders)
      return true
    } catch {
      return false
    }
  }

  write (chunk: Buffer): boolean {
    return this.res.write(chunk)
  }

  end (): void {
    this.res.end()
  }

  onDrain (resume: () => void): void {
    this.res.once('drain', resume)
  }

  answer (plan: AnswerPlan): void {
    writeAnswer(this.res, plan, this.closeAfter())
  }

  cut (): void {
    this.res.destroy()
  }

  private closeAfter (): boolean {
    return this.isClosing() || !this.req.complete
  }
}

/**
 * Sends the answer through Fastify's reply, so the hooks of the route's plugins see it (their
 * `onSend`, corsgate's `onSend` adding the CORS headers, `onResponse`). The body is a stream
 * whose reads resume the upstream: flow control as on the raw path.
 */
export class ReplySink implements AnswerSink {
  readonly records = false
  private body: Readable | undefined
  private drained: (() => void) | undefined

  constructor (private readonly reply: FastifyReply) {}

  get headSent (): boolean {
    return this.body !== undefined || this.reply.sent
  }

  head (status: number, headers: IncomingHttpHeaders): boolean {
    this.body = new Readable({
      read: () => {
        const drained = this.drained
        this.drained = undefined
        drained?.()
      }
    })
    try {
      this.reply.code(status).headers(headers).send(this.body)
      return true
    } catch {
      return false
    }
  }

  write (chunk: Buffer): boolean {
    return this.body!.push(chunk)
  }

  end (): void {
    this.body!.push(null)
  }

  onDrain (resume: () => void): void {
    this.drained = resume
  }

  answer (plan: AnswerPlan): void {
    this.reply.code(plan.status).headers(plan.headers).send(plan.body)
  }

  cut (): void {
    this.body?.destroy(new Error('answer cut short'))
    this.reply.raw.destroy()
  }
}
