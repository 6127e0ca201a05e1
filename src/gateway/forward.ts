// Forwarding an allowed request to its upstream with undici's `dispatch`, shielding the
// upstream from slow clients (docs "Hardening"): the body received whole first (or streamed,
// per route), a slot taken at the upstream's gate (bounded connections and queue), the answer
// taken as fast as the upstream sends it and kept for a slow reader (or passed with flow
// control, per route), data-rate floors both ways, and the upstream's failures turned into
// corsgate's answers. Where the answer goes is a sink: straight onto Node's response
// (`RawSink`, for routes no plugin watches) or through Fastify's reply (`ReplySink`), so that
// plugins' `onSend` hooks see it. Either way the same rules apply (upstream-request.ts,
// answers.ts); undici does the HTTP work: pooling, keep-alive, parsing, timeouts.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { FastifyReply } from 'fastify'
import { addCorsHeaders, errorAnswer, writeAnswer, type AnswerPlan } from './answers.js'
import { pickUpstream, upstreamAnswered, upstreamFailed } from './balance/balancer.js'
import { isEnginePoll } from './balance/engine-io.js'
import { clientAddress } from './balance/upstream-pool.js'
import type { GatewayContext } from './context.js'
import { PayloadTooLargeError, SlowClientError, UpstreamBusyError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js'
import { forwarded } from './forwarded.js'
import type { Judgement } from './judge.js'
import { directRequestId, recordRequest } from './request-log.js'
import type { Route } from './route-table.js'
import { receiveBody, ResponseBuffer, type BufferedBody, type BufferLimits } from './shield/buffers.js'
import { DataRateFloor, type Transfer } from './shield/data-rate.js'
import { ConcurrencyLimit } from './shield/concurrency-limit.js'
import { UpstreamGate, type Ticket } from './shield/upstream-gate.js'
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
  readonly bodyLimit: number
  readonly floor: DataRateFloor
  readonly buffers: BufferLimits & { maxFileBytes: number }
  readonly responseBuffers: BufferLimits & { maxFileBytes: number }
  private readonly gates = new Map<Route, UpstreamGate[]>()

  constructor (readonly ctx: ForwarderContext, readonly rules: UpstreamRules, readonly agent: Dispatcher) {
    const s = ctx.config.server
    this.bodyLimit = s.bodyLimit
    this.floor = new DataRateFloor(s.minDataRate.bytesPerSecond, s.minDataRate.graceMs, (direction) => {
      ctx.metrics.slowClients.inc({ direction })
    })
    const limits = { memoryBytes: s.buffering.memoryBytes, maxFileBytes: s.buffering.maxFileBytes, tempDir: s.buffering.tempDir }
    this.buffers = { ...limits, onSpill: () => { ctx.metrics.bufferedToFile.inc({ direction: 'request' }) } }
    this.responseBuffers = { ...limits, onSpill: () => { ctx.metrics.bufferedToFile.inc({ direction: 'response' }) } }
  }

  /** Forwards a judged, allowed request with a route (admission has refused everything else). */
  forward (req: IncomingMessage, res: ServerResponse, sink: AnswerSink, state: Judgement): void {
    const route = state.route!
    const upstream = pickUpstream(route, req, this.rules.trustProxy)
    new Exchange(this, req, res, sink, state, upstream).start()
  }

  /** The gate in front of upstream `i` of `route`. */
  gate (route: Route, i: number): UpstreamGate {
    let gates = this.gates.get(route)
    if (gates === undefined) {
      const { metrics } = this.ctx
      gates = route.upstreams.map((upstream) => {
        const labels = { route: route.label, upstream }
        metrics.concurrencyLimit.set(labels, route.upstreamConnections)
        const adaptive = route.adaptiveConcurrency ? new ConcurrencyLimit(route.upstreamConnections, (limit) => { metrics.concurrencyLimit.set(labels, limit) }) : undefined
        return new UpstreamGate(route.upstreamConnections, route.maxPending, adaptive)
      })
      this.gates.set(route, gates)
    }
    return gates[i]!
  }
}

/**
 * How a request's body comes: a declared `Content-Length`, a stream of unknown length (HTTP/1.1
 * chunked; HTTP/2 DATA frames without `Content-Length`, RFC 9113 §8.1), or none (HTTP/2: the
 * HEADERS frame ended the stream).
 */
export function bodyFraming (req: IncomingMessage): 'none' | 'length' | 'stream' {
  const length = req.headers['content-length']
  if (req.httpVersionMajor === 2) {
    if ((req as IncomingMessage & { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === true) return 'none'
    return length === undefined ? 'stream' : length === '0' ? 'none' : 'length'
  }
  if (req.headers['transfer-encoding'] !== undefined) return 'stream'
  return length !== undefined && length !== '0' ? 'length' : 'none'
}

/**
 * A request whose answer comes when the upstream has news rather than when it is done queueing:
 * an engine.io long-poll (Socket.IO polling with a session). Its latency says nothing about the
 * upstream's load, and it holds its connection for long on purpose, so the adaptive limit
 * neither learns from it nor counts it. An event stream is known by its answer's head, which
 * the upstream sends at once (see `onResponseStart`), not by what the client asks for.
 */
export function isLongPoll (req: IncomingMessage): boolean {
  return req.method === 'GET' && isEnginePoll(req.url!)
}

function isEventStream (contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.trimStart().toLowerCase().startsWith('text/event-stream')
}

/** A body of unknown length, passed on as it arrives until it passes `limit` bytes. */
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

  /** The request body, when it was received whole before dispatch. */
  private buffered: BufferedBody | undefined
  /** What the client has not taken yet of the answer, when the route buffers answers. */
  private backlog: ResponseBuffer | undefined
  private pumping = false
  private upstreamDone = false
  /** The slot at the upstream's gate: given back once the upstream is done with the request. */
  private holdsSlot = false
  /** Given with a slot granted from the queue: handed back when it is left, to charge its time. */
  private ticket: Ticket | undefined
  /** Whether the slot counts against the upstream's adaptive limit, and for its sample: when it was sent, and whether alone. */
  private counted = true
  private sentAt = 0
  private sentAlone = false
  /** Time from dispatch to the answer's head (ms), once it came. */
  private headMs: number | undefined
  private cancelQueued: (() => void) | undefined
  private queueTimer: NodeJS.Timeout | undefined
  private unwatchUpload: (() => void) | undefined
  private unwatchDownload: (() => void) | undefined
  private written = 0

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

  private get route (): Route {
    return this.state.route!
  }

  /** The body first (when the route buffers it), then a slot at the upstream's gate, then dispatch. */
  start (): void {
    const framing = bodyFraming(this.req)
    const hasBody = framing !== 'none'
    if (!hasBody || !this.route.requestBuffering) {
      if (hasBody) this.watchUpload()
      return this.queue()
    }
    this.watchUpload()
    receiveBody(this.req, this.forwarder.bodyLimit, this.forwarder.buffers).then((body) => {
      this.unwatchUpload?.()
      if (this.clientGone || this.res.destroyed) return body.dispose()
      this.buffered = body
      this.queue()
    }, (error: Error) => {
      this.unwatchUpload?.()
      if (this.clientGone || this.res.destroyed) return
      if (error instanceof PayloadTooLargeError) this.forwarder.ctx.metrics.upstreamErrors.inc({ route: this.route.label, kind: 'body_too_large' })
      this.fail(error)
    })
  }

  /** The request body is watched by the data-rate floor while it comes in. */
  private watchUpload (): void {
    const socket = this.req.socket
    const base = socket.bytesRead
    this.unwatchUpload = this.forwarder.floor.watch({
      direction: 'request',
      bytes: () => socket.bytesRead - base,
      waiting: () => !this.req.complete,
      cut: () => {
        this.forwarder.ctx.logger.warn({ reqId: this.reqId(), route: this.route.label }, 'client sent its body too slowly: request cut')
        this.fail(new SlowClientError())
        this.controller?.abort(new SlowClientError())
      }
    })
  }

  private queue (): void {
    const gate = this.forwarder.gate(this.route, this.upstream)
    const client = (): string => clientAddress(this.req.socket?.remoteAddress, this.req.headers['x-forwarded-for'], this.forwarder.rules.trustProxy)
    this.counted = !isLongPoll(this.req)
    const { admitted, cancel } = gate.enter(client, (ticket) => { this.ticket = ticket; this.dispatch() }, () => { this.queueFull() }, this.counted)
    if (admitted === 'full') return this.queueFull()
    if (admitted === 'queued') {
      this.cancelQueued = cancel
      // Time spent waiting counts against the route's timeout.
      this.queueTimer = setTimeout(() => {
        cancel()
        this.cancelQueued = undefined
        this.forwarder.ctx.metrics.upstreamErrors.inc({ route: this.route.label, kind: 'timeout' })
        this.fail(new UpstreamTimeoutError())
      }, this.route.timeoutMs)
    }
  }

  /** No room at the upstream's gate, or pushed out of its queue by another client's request. */
  private queueFull (): void {
    this.cancelQueued = undefined
    clearTimeout(this.queueTimer)
    this.forwarder.ctx.metrics.shieldRefusals.inc({ route: this.route.label, reason: 'queue_full' })
    this.fail(new UpstreamBusyError())
  }

  private dispatch (): void {
    this.holdsSlot = true
    this.cancelQueued = undefined
    clearTimeout(this.queueTimer)
    if (this.clientGone || this.res.destroyed) return this.releaseSlot(false)
    const { req, route } = this
    const target = this.forwarder.rules.target(route.upstreams[this.upstream]!)
    const headers = this.forwarder.rules.requestHeaders(req, target, route.hostHeader, false)
    this.sentAt = performance.now()
    this.sentAlone = this.counted && this.forwarder.gate(route, this.upstream).countedInFlight === 1
    const timeout = Math.max(1, route.timeoutMs - Math.round(this.sentAt - this.started))
    let body: Dispatcher.DispatchOptions['body'] = null
    if (this.buffered !== undefined) {
      // Received whole: sent with its length, whatever framing the client used.
      headers['content-length'] = String(this.buffered.length)
      body = this.buffered.body()
    } else {
      const framing = bodyFraming(req)
      if (framing === 'stream') body = Readable.from(limited(req, this.forwarder.bodyLimit), { objectMode: false })
      // Streamed as it arrives; a client that dies mid-upload aborts the upstream request.
      else if (framing === 'length') body = req
    }
    this.forwarder.agent.dispatch({
      origin: target.origin,
      path: req.url!,
      method: req.method as Dispatcher.HttpMethod,
      headers,
      body,
      headersTimeout: timeout,
      bodyTimeout: route.timeoutMs,
      // undici reads a per-request `servername` (not in its types); see UpstreamTarget.
      ...(target.secure ? { servername: target.servername } : {})
    } as Dispatcher.DispatchOptions, this)
  }

  /** `sent`: false when the request never went to the upstream (its time says nothing of it). */
  private releaseSlot (sent = true): void {
    if (!this.holdsSlot) return
    this.holdsSlot = false
    this.forwarder.gate(this.route, this.upstream).leave(this.counted, this.ticket, sent, this.headMs)
  }

  /** How long the upstream took to start answering (`ms`, measured when not given), for its adaptive limit. */
  private sample (ms = performance.now() - this.sentAt): void {
    if (this.holdsSlot && this.counted) this.forwarder.gate(this.route, this.upstream).sample(ms, this.sentAlone)
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
    this.headMs = performance.now() - this.sentAt
    this.sample(this.headMs)
    if (this.counted && this.holdsSlot && isEventStream(headers['content-type'])) {
      // A stream from here on: it holds its connection for as long as it has news to send.
      this.forwarder.gate(this.route, this.upstream).uncount()
      this.counted = false
    }
    const head = upstreamResponseHeaders(headers, this.state.policy.config.stripUpstreamCors)
    if (this.route.pool.balanced) this.observer = upstreamAnswered(this.route, this.req, this.upstream, head, () => isSecure(this.req, this.forwarder.rules.trustProxy))
    this.pendingHead = head
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.clientGone) return
    this.observer?.(chunk)
    if (this.pendingHead !== undefined && !this.writeHead()) return
    if (this.backlog !== undefined && (this.backlog.size > 0 || this.pumping)) {
      if (!this.backlog.push(chunk)) controller.pause()
      return
    }
    this.written += chunk.length
    if (this.sink.write(chunk)) return
    if (this.route.responseBuffering) {
      // The client is slower than the upstream: what comes next waits here, not at the upstream.
      this.backlog ??= new ResponseBuffer(this.forwarder.responseBuffers)
      this.pumping = true
      this.sink.onDrain(() => { void this.pump() })
      return
    }
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
    this.upstreamDone = true
    this.releaseSlot()
    if (this.clientGone) return
    if (this.pendingHead !== undefined && !this.writeHead()) return
    if (!this.pumping) this.sink.end()
  }

  /** Feeds the client from the backlog while it keeps up; ends the answer once all is out. */
  private async pump (): Promise<void> {
    const backlog = this.backlog!
    try {
      for (;;) {
        if (this.clientGone) return
        const chunk = await backlog.take()
        if (chunk === undefined) break
        if (this.clientGone) return
        this.written += chunk.length
        if (!this.sink.write(chunk)) {
          this.sink.onDrain(() => { void this.pump() })
          return
        }
      }
      this.pumping = false
      this.controller?.resume()
      if (this.upstreamDone && !this.clientGone) this.sink.end()
    } catch {
      this.sink.cut()
    }
  }

  /** The answer is watched by the data-rate floor once its head is out. */
  private watchDownload (): void {
    const res = this.res
    const transfer: Transfer = {
      direction: 'response',
      bytes: () => this.written - res.writableLength,
      waiting: () => res.writableLength > 0 || (this.backlog?.size ?? 0) > 0,
      cut: () => {
        this.forwarder.ctx.logger.warn({ reqId: this.reqId(), route: this.route.label }, 'client read the answer too slowly: response cut')
        this.sink.cut()
      }
    }
    this.unwatchDownload = this.forwarder.floor.watch(transfer)
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error & { code?: string }): void {
    this.upstreamDone = true
    const timeout = error.code === 'UND_ERR_HEADERS_TIMEOUT'
    // A backend too busy to answer in time is the clearest sign of a queue in it, however
    // little of the route's timeout was left when the request was sent.
    if (timeout) this.sample(Math.max(performance.now() - this.sentAt, this.route.timeoutMs))
    this.releaseSlot()
    // The client's connection is gone (a reset mid-upload fails the body stream undici reads).
    if (this.clientGone || this.res.destroyed) return
    const { ctx } = this.forwarder
    const route = this.state.route!
    if (error instanceof SlowClientError) return
    if (error instanceof PayloadTooLargeError) {
      ctx.metrics.upstreamErrors.inc({ route: route.label, kind: 'body_too_large' })
      this.fail(error)
      return
    }
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
    if (this.sink.head(this.status, head)) {
      this.watchDownload()
      return true
    }
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
    clearTimeout(this.queueTimer)
    this.cancelQueued?.()
    this.unwatchUpload?.()
    this.unwatchDownload?.()
    this.buffered?.dispose()
    this.backlog?.dispose()
    if (!this.res.writableFinished) {
      this.clientGone = true
      this.controller?.abort(new Error('client closed the connection'))
    }
    // Never dispatched (refused, or the client left while it waited): nothing to wait for.
    if (this.controller === undefined) this.releaseSlot()
    if (!this.sink.records) return
    const { ctx } = this.forwarder
    const logRequests = ctx.logger.isLevelEnabled('info')
    // 499 (nginx's "client closed request") when the client left before any answer.
    const status = this.res.headersSent ? this.res.statusCode : 499
    recordRequest(ctx, logRequests, this.state, logRequests ? this.reqId() : '', this.req, status, performance.now() - this.started)
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
    return (this.isClosing() || !this.req.complete) && this.req.httpVersionMajor !== 2
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
