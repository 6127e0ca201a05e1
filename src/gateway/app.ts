// The public gateway as a plain Fastify instance that tests can build and listen on.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyHttpOptions, type FastifyInstance, type FastifyReply } from 'fastify'
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Config } from '../config/schema.js'
import { answerEarly, cors, judgeEarly } from './cors.js'
import { errorBody, NoRouteError } from './errors.js'
import { createUpstreamAgent, Forwarder } from './forward.js'
import { requestHeadError } from './request-head.js'
import { upgrade } from './upgrade.js'
import type { GatewayContext } from './context.js'

export type GatewayOptions = GatewayContext

/** Server limits, set on purpose rather than left at Node's and Fastify's defaults (README "Hardening"). */
export function serverOptions (config: Config): FastifyHttpOptions<Server> {
  const s = config.server
  return {
    // One line per request is ours (cors.ts), not Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // No pino child per request (child() serialises the reqId binding: an allocation and ~1 µs
    // per request for a logger that our lines do not use); request.log is one logger per level,
    // made once, so a route's logLevel still applies. Our log lines carry reqId themselves.
    childLoggerFactory: sharedChildLoggers(),
    trustProxy: s.trustProxy,
    bodyLimit: s.bodyLimit,
    keepAliveTimeout: s.keepAliveTimeoutMs,
    requestTimeout: s.requestTimeoutMs,
    maxRequestsPerSocket: s.maxRequestsPerSocket,
    // 503 while closing is ours, with CORS headers (see cors.ts).
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
    // A URL the router cannot decode (`/%`, an overlong parameter) is refused before any hook
    // runs; answer it in our shape too.
    frameworkErrors: function (error, _request, rawReply) {
      const status = error.statusCode ?? 400
      const reply = rawReply as FastifyReply
      reply.code(status).header('content-type', 'application/json; charset=utf-8').header('vary', 'Origin')
        .send(JSON.stringify(errorBody(status, error.code, error.message)))
    },
    http: {
      maxHeaderSize: s.maxHeaderSize,
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      // Node checks both timeouts on this interval (default 30 s), so it bounds how late a
      // slowloris connection is cut.
      connectionsCheckingInterval: s.connectionsCheckingIntervalMs
    },
    routerOptions: { maxParamLength: 2048 }
  }
}

const CLIENT_ERRORS: Record<string, [number, string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'CORSGATE_REQUEST_TIMEOUT'],
  HPE_HEADER_OVERFLOW: [431, 'CORSGATE_HEADERS_TOO_LARGE']
}

/**
 * Answers what Node's parser refused (smuggling attempts, bad framing, unknown methods) or
 * timed out, in our JSON shape instead of Fastify's, with `Vary: Origin` like every other
 * answer, then closes the connection: after a framing error nothing on it can be trusted.
 */
function answerClientError (this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const [status, code] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'CORSGATE_MALFORMED_REQUEST']
  this.log.debug({ error: err.message, code: err.code }, 'client error')
  // As Node does: once a response has started on this socket, a status line can't follow.
  const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true
  if (socket.writable && !started) {
    const body = JSON.stringify(errorBody(status, code, err.code === undefined ? err.message : `${err.message} (${err.code})`))
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nVary: Origin\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}

function sharedChildLoggers (): (logger: FastifyBaseLogger, bindings: unknown, opts: { level?: string }) => FastifyBaseLogger {
  const byLevel = new Map<string, FastifyBaseLogger>()
  return function (logger, _bindings, opts) {
    const level = opts.level ?? ''
    let child = byLevel.get(level)
    if (child === undefined) {
      child = level === '' ? logger : logger.child({}, { level })
      byLevel.set(level, child)
    }
    return child
  }
}

/** Limits Node's http server takes as properties rather than constructor options. */
export function applyServerLimits (server: Server, config: Config): void {
  const s = config.server
  // Node stops reading header lines at maxHeadersCount and drops the rest silently; one more
  // than the limit lets `requestHeadError` see that the limit was passed and answer 431.
  server.maxHeadersCount = s.maxHeadersCount + 1
  if (s.maxConnections > 0) server.maxConnections = s.maxConnections
}

/**
 * Puts corsgate's own request handling in front of Fastify's: allowed preflights and enforced
 * denials are answered by cors.ts `answerEarly`, allowed requests forwarded by forward.ts.
 * What is left (a head `requestHeadError` refuses, no route, an oversize body, an ambiguous
 * path, shutting down, report-only denials of preflights, methods corsgate does not proxy)
 * reaches Fastify, whose hooks (cors.ts) and handlers answer it with corsgate's errors.
 */
function answerBeforeFastify (server: Server, opts: GatewayOptions, forwarder: Forwarder): void {
  const listeners = server.listeners('request')
  const fastifyHandler = listeners[0] as ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  if (fastifyHandler === undefined || listeners.length !== 1) return
  server.removeListener('request', fastifyHandler)
  server.on('request', function (this: Server, req: IncomingMessage, res: ServerResponse) {
    const state = requestHeadError(req.rawHeaders, opts.config) === undefined ? judgeEarly(opts, req) : undefined
    if (state !== undefined && (answerEarly(opts, req, res, state) || forwarder.forward(req, res, state))) return
    fastifyHandler.call(this, req, res)
  })
}

export async function buildGateway (opts: GatewayOptions): Promise<FastifyInstance> {
  const app = Fastify({ ...serverOptions(opts.config), loggerInstance: opts.logger as unknown as FastifyBaseLogger })
  applyServerLimits(app.server, opts.config)
  const agent = createUpstreamAgent(opts.config)
  // onClose runs once every client connection has ended, so an upstream request still pending
  // (a long-poll whose client was cut at the drain deadline) has no one to answer: destroy,
  // don't wait for it.
  app.addHook('onClose', async () => { await agent.destroy() })
  answerBeforeFastify(app.server, opts, new Forwarder(opts, agent))
  // Before the CORS layer judges anything (hooks run in registration order).
  app.addHook('onRequest', function (request, reply, done) {
    const error = requestHeadError(request.raw.rawHeaders, opts.config)
    // Refused before routing: no policy is known yet, so Vary: Origin in case any cache looks.
    if (error !== undefined) return reply.header('vary', 'Origin').send(error)
    done()
  })

  app.setErrorHandler(function (error: Error & { statusCode?: number, code?: string }, request, reply) {
    const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
    if (status >= 500 && error.code?.startsWith('CORSGATE_') !== true) request.log.error({ reqId: request.id, err: error }, 'unexpected error')
    reply.code(status).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(errorBody(status, error.code, error.message)))
  })
  // Fastify has no routes: every request it sees is answered by the hooks (cors.ts) or here.
  // A body is never read for that: no parser buffers it.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', function (_request, payload, done) { done(null, payload) })
  app.setNotFoundHandler(function (_request, reply) {
    reply.send(new NoRouteError())
  })

  await app.register(cors, opts)
  await app.register(upgrade, opts)
  return app
}
