// `corsgate/fastify-cors`: for an app that keeps @fastify/cors. Its documented extension point,
// the options `delegator`, asks per request which CORS options apply; corsgate answers from the
// compiled policy and the live Redis lists, and @fastify/cors writes the headers.
//
// @fastify/cors decides nothing beyond what it is told: a refused origin gets no CORS headers
// (`origin: false`) but the request still runs, and a refused preflight falls through to its
// "not found". Enforcement before the upstream, websocket upgrades and corsgate's own answers
// need the plugin (`corsgate/fastify`).
import type { FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { ObservedOrigins } from '../observe/observed-origins.js'
import { createLogger } from '../logger.js'
import type { SourceStatus } from '../admin/app.js'
import type { GatewayMetrics } from '../admin/metrics.js'
import type { ExplainQuery, Explanation } from '../gateway/explain.js'
import type { Judgement } from '../gateway/judge.js'
import type { PolicyStore } from '../sources/policy-store.js'
import type { RedisSourceState } from '../sources/redis.js'
import type { ConfigInput } from './embedded-config.js'
import { createEmbeddedEngine } from './embedded-engine.js'

/**
 * The options @fastify/cors takes from a delegator (the subset corsgate sets). A key left out
 * keeps @fastify/cors's default: no allowed headers given echoes the requested ones, no exposed
 * headers and no max-age send none.
 */
export interface DelegatedCorsOptions {
  /** The exact `Access-Control-Allow-Origin` to send (the request's origin, or `*`); false: none. */
  origin: string | false
  credentials?: boolean
  methods?: string
  allowedHeaders?: string
  exposedHeaders?: string
  maxAge?: number
  optionsSuccessStatus?: number
  /** Only a real preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered as one. */
  preflight?: boolean
  strictPreflight?: boolean
}

export interface CorsgateDelegatorOptions {
  /** A path to a corsgate YAML config file, or the object such a file holds (routes optional). */
  config: ConfigInput
  /** Chooses the policy of a request by name, instead of the config's routes. */
  policy?: (request: FastifyRequest) => string | undefined
  /** `CORSGATE_*` variables to apply; none by default. */
  env?: Record<string, string | undefined>
  /** Where reloads and Redis state changes are logged; a pino logger at the config's `log.level` by default. */
  logger?: Logger
}

/** An @fastify/cors `delegator`, with corsgate's live state; `close()` stops reading Redis. */
export interface CorsgateDelegator {
  (request: FastifyRequest, callback: (error: Error | null, options?: DelegatedCorsOptions) => void): void
  readonly store: PolicyStore
  explain: (query: ExplainQuery & { policy?: string }) => Explanation
  readonly metrics: GatewayMetrics
  readonly redis: Readonly<RedisSourceState> | undefined
  sources: () => Record<string, SourceStatus>
  /** The observed-origin counts (undefined when `observe.enabled` is off). */
  readonly observed: ObservedOrigins | undefined
  /** Stops the Redis source and the observed-origin flush; call it from the app's `onClose`. */
  close: () => Promise<void>
}

/** The @fastify/cors options of one judged request. */
export function corsOptionsFor (state: Judgement): DelegatedCorsOptions {
  const { decision, policy } = state
  if (decision.allowOrigin === undefined) return { origin: false }
  const v = policy.headerValues
  const options: DelegatedCorsOptions = {
    origin: decision.allowOrigin,
    credentials: policy.credentials,
    methods: v.allowMethods,
    optionsSuccessStatus: policy.preflightStatus,
    preflight: state.kind === 'preflight',
    strictPreflight: false
  }
  // `allowHeaders: "*"` leaves it out: @fastify/cors then echoes the requested list.
  if (v.allowHeaders !== undefined) options.allowedHeaders = v.allowHeaders
  if (v.exposeHeaders !== undefined) options.exposedHeaders = v.exposeHeaders
  // A report-only would-be denial is served for the trial only: no lasting preflight cache.
  if (v.maxAge !== undefined && decision.outcome !== 'would_deny') options.maxAge = Number(v.maxAge)
  return options
}

export async function corsgateDelegator (opts: CorsgateDelegatorOptions): Promise<CorsgateDelegator> {
  const engine = await createEmbeddedEngine(opts, opts.logger ?? createLogger)
  const delegator = function (request: FastifyRequest, callback: (error: Error | null, options?: DelegatedCorsOptions) => void): void {
    let options: DelegatedCorsOptions
    try {
      const state = engine.judge(request, false)
      // Observed origins count here; request metrics do not: the status and the time are
      // @fastify/cors's and the app's, which the delegator never sees.
      engine.observed?.observer.record(state.policy.name, state.origin, state.decision.outcome, state.decision.reason, state.route?.label ?? 'none')
      options = corsOptionsFor(state)
    } catch (err) {
      // A policy name the app chose that is not defined: an error, never another policy.
      callback(err as Error)
      return
    }
    callback(null, options)
  }
  Object.defineProperties(delegator, {
    store: { value: engine.store },
    explain: { value: engine.explain },
    metrics: { value: engine.metrics },
    redis: { get: () => engine.redis?.state },
    sources: { value: engine.sources },
    observed: { value: engine.observed },
    close: { value: engine.stop }
  })
  engine.start()
  return delegator as CorsgateDelegator
}
