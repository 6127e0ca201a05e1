// `corsgate/fastify`: corsgate's judgement inside an existing Fastify app, beside
// @fastify/http-proxy or the app's own routes. The same stages as the standalone gateway
// (admission.ts: head checks → judge → corsgate's own answers), run from Fastify's hooks:
//
//   onRequest  judge first (before the app's auth plugins, as @fastify/cors does); answer
//              preflights and enforced denials here, so they never reach the app or the
//              upstream. Websocket upgrades come through here too: @fastify/http-proxy and
//              @fastify/websocket route them through Fastify's router "so that it will invoke
//              hooks", and a refused one is answered on its socket before any upstream is dialled.
//   onSend     every answer that goes out (the app's, an error, the proxy's) loses the CORS
//              headers it carries and gets corsgate's, with `Vary`. @fastify/reply-from sets
//              the upstream's headers just before it sends, over anything set in onRequest;
//              onSend runs after that, so this is where the headers must be written.
//   onResponse metrics, observed origins, the log line of a refusal.
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Logger } from 'pino'
import type { SourceStatus } from '../admin/app.js'
import type { GatewayMetrics } from '../admin/metrics.js'
import type { Engine } from '../engine.js'
import { admitEmbedded } from '../gateway/admission.js'
import { addCorsHeaders, writeAnswer } from '../gateway/answers.js'
import type { RequestMetrics } from '../gateway/context.js'
import type { ExplainQuery, Explanation } from '../gateway/explain.js'
import type { Judgement } from '../gateway/judge.js'
import { recordRequest } from '../gateway/request-log.js'
import type { ObservedOrigins } from '../observe/observed-origins.js'
import type { PolicySnapshot } from '../policy/snapshot.js'
import type { PolicyStore } from '../sources/policy-store.js'
import type { RedisSourceState } from '../sources/redis.js'
import type { ConfigInput } from './embedded-config.js'
import { createEmbeddedEngine } from './embedded-engine.js'
import { readiness } from '../admin/overview.js'

export interface CorsgatePluginOptions {
  /** A path to a corsgate YAML config file, or the object such a file holds (routes optional). */
  config: ConfigInput
  /**
   * Chooses the policy of a request by name, instead of the config's routes. Return undefined
   * to fall back to the routes (or `default`). A name that is not defined is a 500, never
   * another policy in its place.
   */
  policy?: (request: FastifyRequest) => string | undefined
  /** `CORSGATE_*` variables to apply; none by default (pass `process.env` to honour them). */
  env?: Record<string, string | undefined>
  /**
   * One log line per request, as the standalone gateway writes (`route`, `origin`, `decision`,
   * `reason`): `true` for every request, `'denied'` (default) for refusals and report-only
   * would-be refusals, `false` for none. Written with the app's logger.
   */
  logRequests?: boolean | 'denied'
  /** corsgate's Prometheus metrics (a registry of their own); default on, `false` to skip counting. */
  metrics?: boolean
}

/** What the plugin exposes on the app (`app.corsgate`), for the app to mount where it likes. */
export interface Corsgate {
  /** The live policies (swapped whole when Redis or a reload delivers new entries). */
  readonly store: PolicyStore
  readonly snapshot: PolicySnapshot
  /** The answer `corsgate check` and the admin `/explain` give, against the live policy. */
  explain: (query: ExplainQuery & { policy?: string }) => Explanation
  /** corsgate's metrics; `metrics.registry.metrics()` is the Prometheus text. Undefined with `metrics: false`. */
  readonly metrics: GatewayMetrics | undefined
  /** The Redis source's state (connected, stale, last load), when Redis is configured. */
  readonly redis: Readonly<RedisSourceState> | undefined
  /** What the standalone admin's `/readyz` and `/policies` report of each dynamic source. */
  sources: () => Record<string, SourceStatus>
  /** Observed origins (undefined when `observe.enabled` is off). */
  readonly observed: ObservedOrigins | undefined
  /** True once every dynamic source has loaded (Redis, when `redis.required`). */
  ready: () => boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    /** corsgate's judgement of the request: route, policy, decision. */
    corsgate: Judgement | null
  }
  interface FastifyInstance {
    /** corsgate's live policies, explain, metrics and Redis state. */
    corsgate: Corsgate
  }
}

const kRecorded = Symbol('corsgate.recorded')
type EmbeddedRequest = IncomingMessage & { [kRecorded]?: true, upgrade?: boolean }

const nothing = (): void => {}
/** Counts nothing: `metrics: false`. */
const NO_METRICS: RequestMetrics = {
  recordRequest: nothing,
  upstreamErrors: { inc: nothing },
  openWebsockets: { inc: nothing, dec: nothing },
  slowClients: { inc: nothing },
  bufferedToFile: { inc: nothing },
  shieldRefusals: { inc: nothing },
  concurrencyLimit: { set: nothing }
}

class EmbeddedPipeline {
  private readonly context: Parameters<typeof admitEmbedded>[0]

  constructor (
    private readonly engine: Engine,
    private readonly logger: Logger,
    private readonly choosePolicy: ((request: FastifyRequest) => string | undefined) | undefined,
    private readonly logRequests: boolean | 'denied',
    private readonly metrics: RequestMetrics
  ) {
    // The app serves what no route covers: such a request is judged by `default` or refused.
    this.context = { config: engine.loaded.config, store: engine.store, routes: engine.routes, unroutedPolicy: 'default' }
  }

  onRequest (request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    const raw = request.raw as EmbeddedRequest
    // Node sets `upgrade` on a request it hands to the server's 'upgrade' listeners.
    const upgrade = raw.upgrade === true
    const { state, answer } = admitEmbedded(this.context, raw, upgrade, this.choosePolicy?.(request))
    request.corsgate = state
    if (answer !== undefined) {
      // Written by the standalone gateway's writer, bypassing the app's hooks: these answers
      // are corsgate's alone (a preflight keeps its `Content-Length: 0`, a 403 gains no headers).
      const started = performance.now()
      reply.hijack()
      writeAnswer(reply.raw, answer, upgrade || (answer.status >= 400 && !raw.complete && raw.headers['content-length'] !== undefined))
      this.record(request, state, answer.status, performance.now() - started)
      return
    }
    // An upgrade let through is hijacked by the proxy: Fastify sends nothing, so it is counted here.
    if (upgrade) this.record(request, state, 101, 0)
    done()
  }

  onSend (request: FastifyRequest, reply: FastifyReply): void {
    const raw = request.raw as EmbeddedRequest
    // An upgrade answered over HTTP (the app refused it) closes its socket.
    if (raw.upgrade === true) reply.header('connection', 'close')
    const state = request.corsgate
    if (state === null) return
    if (state.policy.config.stripUpstreamCors) {
      for (const name of Object.keys(reply.getHeaders())) {
        if (name.startsWith('access-control-')) reply.removeHeader(name)
      }
    }
    const headers: Record<string, string | string[] | number | undefined> = { vary: reply.getHeader('vary') as string | string[] | undefined }
    addCorsHeaders(headers, state)
    reply.headers(headers)
  }

  onResponse (request: FastifyRequest, reply: FastifyReply): void {
    const state = request.corsgate
    if (state === null || (request.raw as EmbeddedRequest)[kRecorded] === true) return
    this.record(request, state, reply.statusCode, reply.elapsedTime)
  }

  private record (request: FastifyRequest, state: Judgement, status: number, elapsedMs: number): void {
    ;(request.raw as EmbeddedRequest)[kRecorded] = true
    const log = this.logRequests === true || (this.logRequests === 'denied' && (state.decision.reject || state.decision.outcome === 'would_deny'))
    recordRequest({ metrics: this.metrics, logger: this.logger, observer: this.engine.observed?.observer }, log, state, request.id, request.raw, status, elapsedMs)
  }
}

const corsgatePlugin: FastifyPluginAsync<CorsgatePluginOptions> = async function corsgate (app: FastifyInstance, opts: CorsgatePluginOptions) {
  const logger = app.log as unknown as Logger
  const engine = await createEmbeddedEngine(opts, logger)
  const { loaded, metrics: registry } = engine
  const metrics = opts.metrics === false ? undefined : registry
  const pipeline = new EmbeddedPipeline(engine, logger, engine.choosePolicy, opts.logRequests ?? 'denied', metrics ?? NO_METRICS)

  const handle: Corsgate = {
    store: engine.store,
    get snapshot () { return engine.store.snapshot },
    explain: engine.explain,
    metrics,
    get redis () { return engine.redis?.state },
    sources: engine.sources,
    observed: engine.observed,
    ready: () => readiness(loaded.config, engine.sources(), false).ready
  }
  app.decorate('corsgate', handle)
  app.decorateRequest('corsgate', null)
  app.addHook('onRequest', function (request, reply, done) { pipeline.onRequest(request, reply, done) })
  app.addHook('onSend', function (request, reply, payload, done) { pipeline.onSend(request, reply); done(null, payload) })
  app.addHook('onResponse', function (request, reply, done) { pipeline.onResponse(request, reply); done() })
  app.addHook('onClose', async () => { await engine.stop() })
  engine.start()
}

/**
 * corsgate as a Fastify plugin: `app.register(corsgate, { config })`. Register it before the
 * app's routes and auth plugins; its hooks apply to the whole app (fastify-plugin).
 */
export const corsgate = fp(corsgatePlugin, { name: 'corsgate', fastify: '5.x' })
export default corsgate
