// The public gateway: one pipeline for every request and websocket upgrade on the public port.
//
//   head checks → judge → corsgate's own answers   (admission.ts, before anything else)
//   → the user's plugins and hooks                  (Fastify: public routes are real routes)
//   → forward (forward.ts) or tunnel (websocket/)
//
// Admission runs first, from the server's `request` and `upgrade` events and again (the same
// result, kept on the request) in the first `onRequest` hook for requests that reach Fastify by
// other ways (`inject`). So preflights and enforced denials never reach a plugin, as
// @fastify/cors answers preflights before authentication plugins. What admission lets through
// goes through Fastify's router to the route's handler, so every hook of the route's scope
// applies, and every answer carries corsgate's CORS headers (`onSend`).
//
// A route that no plugin or hook watches skips Fastify's request and reply objects: the same
// forwarder and answer writer, fed from the server's event (`Pipeline.shortcut`).
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import type { Config } from '../config/schema.js'
import { admit, admitted, PROXIED_METHODS } from './admission.js'
import { addCorsHeaders, errorAnswer, writeAnswer, writeAnswerToSocket, type AnswerPlan } from './answers.js'
import type { GatewayContext } from './context.js'
import { HeadersTooLargeError, MalformedRequestError, NoRouteError, RequestTimeoutError, TooManyInFlightError, UnexpectedError, type AnswerableError } from './errors.js'
import { Forwarder, RawSink, ReplySink } from './forward.js'
import type { Judgement } from './judge.js'
import { registerPlugins, type GatewayPlugin } from './plugins.js'
import { PublicServer } from './public-server.js'
import { directRequestId, recordRequest } from './request-log.js'
import type { Route } from './route-table.js'
import { ClientLimits } from './shield/client-limits.js'
import { UpstreamRules } from './upstream-request.js'
import { Handshakes } from './websocket/handshake.js'
import { CLOSE_GOING_AWAY, TunnelSet } from './websocket/tunnel.js'
import { ServerResponse as NodeServerResponse } from '../node-http.js'

export interface GatewayOptions extends GatewayContext {
  /** Fastify plugins (from the config's `plugins:` or from code), registered in order. */
  plugins?: readonly GatewayPlugin[]
  /** The config file, named when a plugin fails to register. */
  configFile?: string
}

declare module 'fastify' {
  interface FastifyRequest {
    /** corsgate's judgement of the request: route, policy, decision. */
    corsgate: Judgement | null
  }
  interface FastifyInstance {
    /** The websockets open through the gateway (closed with 1001 on close). */
    websockets: TunnelSet
    /** The public port's server: HTTP/2 sessions, TLS certificates, closing connections at the drain deadline. */
    publicServer: PublicServer
  }
}

/** Fastify's own options for the public instance (the server itself is made by `createPublicServer`). */
function fastifyOptions (config: Config, logger: FastifyBaseLogger): FastifyServerOptions {
  return {
    loggerInstance: logger,
    // One line per request is ours (request-log.ts), not Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // No pino child per request (our lines carry reqId themselves); one per level, so a
    // route's logLevel still applies.
    childLoggerFactory: sharedChildLoggers(),
    trustProxy: config.server.trustProxy,
    bodyLimit: config.server.bodyLimit,
    // 503 while closing is ours, with CORS headers.
    return503OnClosing: false,
    exposeHeadRoutes: false,
    clientErrorHandler: answerClientError,
    // A URL the router cannot decode is answered in our shape too.
    frameworkErrors: function (error, request, reply) {
      sendPlan(request, reply, errorAnswer(error, admitted(request.raw)?.state))
    },
    routerOptions: { maxParamLength: 2048 }
  }
}

const CLIENT_ERRORS: Record<string, () => AnswerableError> = {
  ERR_HTTP_REQUEST_TIMEOUT: () => new RequestTimeoutError(),
  HPE_HEADER_OVERFLOW: () => new HeadersTooLargeError()
}

/**
 * Answers what Node's parser refused (smuggling attempts, bad framing, unknown methods) or
 * timed out, in our JSON shape, then closes the connection: after a framing error nothing on
 * it can be trusted.
 */
function answerClientError (this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  this.log.debug({ error: err.message, code: err.code }, 'client error')
  // As Node does: once a response has started on this socket, a status line can't follow.
  const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true
  if (!started) {
    const error = CLIENT_ERRORS[err.code ?? '']?.() ?? new MalformedRequestError(err.code === undefined ? err.message : `${err.message} (${err.code})`)
    writeAnswerToSocket(socket, errorAnswer(error, undefined))
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

const kOwnAnswer = Symbol('corsgate.ownAnswer')
const kUpgrade = Symbol('corsgate.upgrade')
const kRecorded = Symbol('corsgate.recorded')
interface UpgradeCarrier { socket: Duplex, head: Buffer }
type PipelineRequest = IncomingMessage & { [kOwnAnswer]?: true, [kUpgrade]?: UpgradeCarrier, [kRecorded]?: true }

/** Sends one of corsgate's answers through Fastify (the request reached Fastify first). */
function sendPlan (request: FastifyRequest, reply: FastifyReply, plan: AnswerPlan): void {
  ;(request.raw as PipelineRequest)[kOwnAnswer] = true
  reply.code(plan.status).headers(plan.headers).send(plan.body)
}

/** The stages around Fastify: admission, the shortcut, upgrades, and the hooks that close the pipeline. */
class Pipeline {
  /** Routes served without Fastify's request and reply (decided when the instance is ready). */
  private shortcuts: ReadonlySet<Route> = new Set()
  private readonly logRequests: boolean

  constructor (
    private readonly ctx: GatewayContext,
    readonly forwarder: Forwarder,
    readonly handshakes: Handshakes,
    readonly clients: ClientLimits
  ) {
    this.logRequests = ctx.logger.isLevelEnabled('info')
  }

  useShortcuts (routes: Iterable<Route>): void {
    this.shortcuts = new Set(routes)
  }

  /** The server's `request` event: admission, then the shortcut or Fastify. */
  request (req: IncomingMessage, res: ServerResponse, fastify: (req: IncomingMessage, res: ServerResponse) => void): void {
    const { state, answer } = admit(this.ctx, req, false)
    if (answer !== undefined) return this.answer(req, res, state, answer)
    if (this.clients.countsInFlight) {
      const leave = this.clients.enter(req)
      if (leave === undefined) {
        this.ctx.metrics.shieldRefusals.inc({ route: state.route!.label, reason: 'client_in_flight' })
        return this.answer(req, res, state, errorAnswer(new TooManyInFlightError(), state))
      }
      res.once('close', leave)
    }
    if (this.shortcuts.has(state.route!)) return this.forwarder.forward(req, res, new RawSink(req, res, state, this.ctx.isClosing), state)
    fastify(req, res)
  }

  /** The server's `upgrade` event: admission, then the handshake directly or through Fastify's router. */
  upgrade (req: IncomingMessage, socket: Duplex, head: Buffer, routing: (req: IncomingMessage, res: ServerResponse) => void): void {
    socket.on('error', destroyOnError)
    const started = performance.now()
    const { state, answer } = admit(this.ctx, req, true)
    if (answer !== undefined) {
      writeAnswerToSocket(socket, answer)
      return this.record(req, state, answer.status, started)
    }
    if (this.shortcuts.has(state.route!)) return this.tunnel(req, socket, head, state, started)
    // Through Fastify's router, as @fastify/websocket does, so the route's hooks run: a
    // response on the upgrade's socket answers what a hook answers; the handler tunnels.
    ;(req as PipelineRequest)[kUpgrade] = { socket, head }
    const res = new NodeServerResponse(req)
    res.shouldKeepAlive = false
    res.assignSocket(socket as Socket)
    res.once('finish', () => { socket.destroy() })
    routing(req, res)
  }

  tunnel (req: IncomingMessage, socket: Duplex, head: Buffer, state: Judgement, started: number): void {
    ;(req as PipelineRequest)[kRecorded] = true
    this.handshakes.open(req, socket, head, state, (status, upstream) => { this.record(req, state, status, started, upstream) })
  }

  /** The route handler: the request has passed every hook of its route. */
  handle (request: FastifyRequest, reply: FastifyReply): void {
    const state = request.corsgate!
    const raw = request.raw as PipelineRequest
    const upgrade = raw[kUpgrade]
    if (upgrade === undefined) return this.forwarder.forward(raw, reply.raw, new ReplySink(reply), state)
    reply.hijack()
    reply.raw.detachSocket(upgrade.socket as Socket)
    this.tunnel(raw, upgrade.socket, upgrade.head, state, performance.now() - reply.elapsedTime)
  }

  private answer (req: IncomingMessage, res: ServerResponse, state: Judgement, plan: AnswerPlan): void {
    const started = performance.now()
    writeAnswer(res, plan, this.ctx.isClosing() || (plan.status >= 400 && !req.complete && req.headers['content-length'] !== undefined))
    this.record(req, state, plan.status, started)
  }

  private record (req: IncomingMessage, state: Judgement, status: number, started: number, upstream?: string): void {
    recordRequest(this.ctx, this.logRequests, state, this.logRequests ? directRequestId() : '', req, status, performance.now() - started, upstream)
  }

  /** First hook of every request that reaches Fastify: admission (kept from the server event, or made now). */
  onRequest (request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    const { state, answer } = admit(this.ctx, request.raw, (request.raw as PipelineRequest)[kUpgrade] !== undefined)
    request.corsgate = state
    if (answer !== undefined) return sendPlan(request, reply, answer)
    done()
  }

  /** Every answer that goes out through Fastify — the upstream's, a plugin's, an error — gets the CORS headers. */
  onSend (request: FastifyRequest, reply: FastifyReply): void {
    const raw = request.raw as PipelineRequest
    if ((this.ctx.isClosing() && raw.httpVersionMajor !== 2) || raw[kUpgrade] !== undefined) reply.header('connection', 'close')
    const state = request.corsgate
    if (state === null || raw[kOwnAnswer] === true) return
    const headers: Record<string, string | string[] | number | undefined> = { vary: reply.getHeader('vary') as string | undefined }
    addCorsHeaders(headers, state)
    reply.headers(headers)
  }

  onResponse (request: FastifyRequest, reply: FastifyReply): void {
    const state = request.corsgate
    if (state === null || (request.raw as PipelineRequest)[kRecorded] === true) return
    recordRequest(this.ctx, this.logRequests, state, request.id, request.raw, reply.statusCode, reply.elapsedTime)
  }
}

function destroyOnError (this: Duplex): void {
  this.destroy()
}

// Lifecycle hooks corsgate adds to the public instance itself (onRequest, onSend, onResponse).
const OWN_HOOKS = 3
const LIFECYCLE_HOOKS = ['onRequest', 'preParsing', 'preValidation', 'preHandler', 'preSerialization', 'onSend', 'onResponse', 'onError', 'onTimeout', 'onRequestAbort']

/**
 * How many request lifecycle hooks are registered on the instance itself. Fastify offers no
 * public way to ask, so this reads its hook table; if that ever moves, the answer is "many"
 * and every route goes through Fastify (slower, never wrong).
 */
function instanceHookCount (app: FastifyInstance): number {
  const key = Object.getOwnPropertySymbols(app).find((s) => s.description === 'fastify.hooks')
  const hooks = key === undefined ? undefined : (app as unknown as Record<symbol, Record<string, unknown[]> | undefined>)[key]
  if (hooks === undefined) return Number.POSITIVE_INFINITY
  let n = 0
  for (const name of LIFECYCLE_HOOKS) n += Array.isArray(hooks[name]) ? hooks[name].length : 0
  return n
}

export async function buildGateway (opts: GatewayOptions): Promise<FastifyInstance> {
  const { config } = opts
  const rules = new UpstreamRules(config)
  const agent = rules.createAgent(config.server.upstreamConnections)
  const { maxMessageBytes, idleTimeoutMs, closeGraceMs } = config.websocket
  const tunnels = new TunnelSet({ maxMessageBytes, closeGraceMs, idleTimeoutMs, metrics: opts.metrics, logger: opts.logger })
  const { perClient, trustProxy } = config.server
  const clients = new ClientLimits(perClient.maxConnections, perClient.maxInFlight, trustProxy, (reason) => { opts.metrics.shieldRefusals.inc({ route: 'none', reason }) })
  const pipeline = new Pipeline(opts, new Forwarder(opts, rules, agent), new Handshakes(opts, rules, tunnels), clients)

  let publicServer: PublicServer | undefined
  const app: FastifyInstance = Fastify({
    ...fastifyOptions(config, opts.logger as unknown as FastifyBaseLogger),
    serverFactory: (handler) => {
      publicServer = PublicServer.create(config, opts.logger)
      const server = publicServer.server
      clients.attach(server)
      // HTTP/2 requests come as Node's compatibility objects, which the pipeline reads and
      // writes through the same API (answers.ts keeps HTTP/1.1-only headers off HTTP/2).
      server.on('request', (req: IncomingMessage, res: ServerResponse) => { pipeline.request(req, res, handler) })
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        // A throw here would be an uncaught exception in the server: never let one out.
        try {
          pipeline.upgrade(req, socket, head, (r, s) => { app.routing(r, s) })
        } catch (err) {
          opts.logger.error({ err, path: req.url?.split('?')[0] }, 'unexpected error in websocket upgrade')
          writeAnswerToSocket(socket, errorAnswer(new UnexpectedError(), undefined))
        }
      })
      return server as Server
    }
  })
  app.decorate('websockets', tunnels)
  app.decorate('publicServer', publicServer!)
  app.decorateRequest('corsgate', null)
  // onClose runs once every client connection has ended, so an upstream request still pending
  // (a long-poll whose client was cut at the drain deadline) has no one to answer: destroy.
  app.addHook('onClose', async () => { await agent.destroy() })
  // SIGTERM: every websocket hears 1001 "going away" before the server closes (SPEC "CLI").
  app.addHook('preClose', async () => { await tunnels.closeAll(CLOSE_GOING_AWAY) })
  // HTTP/2 clients hear GOAWAY at once, and finish their streams in flight.
  app.addHook('preClose', async () => { publicServer!.goAway() })

  // corsgate's hooks come first: they run before any plugin's.
  app.addHook('onRequest', function (request, reply, done) { pipeline.onRequest(request, reply, done) })
  app.addHook('onSend', function (request, reply, payload, done) { pipeline.onSend(request, reply); done(null, payload) })
  app.addHook('onResponse', function (request, reply, done) { pipeline.onResponse(request, reply); done() })

  app.setErrorHandler(function (error: Error & { statusCode?: number, code?: string }, request, reply) {
    const plan = errorAnswer(error, request.corsgate ?? undefined)
    if (plan.status >= 500 && error.code?.startsWith('CORSGATE_') !== true) request.log.error({ reqId: request.id, err: error }, 'unexpected error')
    reply.code(plan.status).headers(plan.headers).send(plan.body)
  })
  // Bodies are never parsed: the forwarder streams them as they arrive.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', function (_request, _payload, done) { done(null) })
  app.setNotFoundHandler(function (request, reply) {
    sendPlan(request, reply, errorAnswer(new NoRouteError(), request.corsgate ?? undefined))
  })

  // Routes other plugins declare would be skipped by the shortcut: any one turns it off.
  let foreignRoutes = 0
  const ownRoutes = new Set<unknown>()
  app.addHook('onRoute', (route) => { if (!ownRoutes.has(route.handler)) foreignRoutes++ })

  const scoped = await registerPlugins(app, opts.plugins ?? [], opts.routes.routes, (scope, _routes, constraint) => {
    const handler = function (request: FastifyRequest, reply: FastifyReply): void { pipeline.handle(request, reply) }
    ownRoutes.add(handler)
    const constraints = constraint === undefined ? undefined : { corsgateRoute: constraint }
    for (const url of ['/', '/*']) scope.route({ method: [...PROXIED_METHODS], url, handler, ...(constraints === undefined ? {} : { constraints }) })
  }, (req) => admit(opts, req, (req as PipelineRequest)[kUpgrade] !== undefined).state.route, opts.configFile)

  app.addHook('onReady', async function () {
    const watched = instanceHookCount(app) > OWN_HOOKS || foreignRoutes > 0
    pipeline.useShortcuts(watched ? [] : opts.routes.routes.filter((r) => !scoped.has(r)))
  })
  return app
}
