// corsgate's engine as the Fastify plugin and the @fastify/cors delegator run it inside an app:
// the config loaded and checked, the live policy store fed by Redis, the metrics, observed
// origins, and the judgement of a Fastify request. One engine (src/engine.ts) with the
// standalone gateway; here the app forwards, so routes only choose the policy.
import type { FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { GatewayMetrics } from '../admin/metrics.js'
import type { Config } from '../config/schema.js'
import { createEngine, type Engine } from '../engine.js'
import { explain, type ExplainQuery, type Explanation } from '../gateway/explain.js'
import { isEncrypted } from '../gateway/forwarded.js'
import { judgeRequest, requestKind, type Judgement } from '../gateway/judge.js'
import { RouteTable } from '../gateway/route-table.js'
import { loadEmbeddedConfig, type EmbeddedConfigOptions } from './embedded-config.js'

export interface EmbeddedEngine extends Engine {
  /** A registry of corsgate's own metrics (no process metrics: those are the app's). */
  readonly metrics: GatewayMetrics
  explain: (query: ExplainQuery & { policy?: string }) => Explanation
  /** The judgement of a request (route, policy, decision), against the live policy. */
  judge: (request: FastifyRequest, upgrade: boolean) => Judgement
  /** The policy the app chose for a request, if it chooses. */
  choosePolicy: ((request: FastifyRequest) => string | undefined) | undefined
}

export interface EmbeddedEngineOptions extends Omit<EmbeddedConfigOptions, 'choosesPolicy'> {
  policy?: ((request: FastifyRequest) => string | undefined) | undefined
}

/** `log`: a logger, or one made for the loaded config (its `log.level`). */
export async function createEmbeddedEngine (opts: EmbeddedEngineOptions, log: Logger | ((config: Config) => Logger)): Promise<EmbeddedEngine> {
  const choosePolicy = opts.policy
  const loaded = loadEmbeddedConfig({ config: opts.config, env: opts.env, choosesPolicy: choosePolicy !== undefined })
  const logger = typeof log === 'function' ? log(loaded.config) : log
  for (const warning of loaded.warnings) logger.warn({ file: loaded.file }, warning)
  // An upstream given in a shared config file is shown by `explain`; the app does the forwarding.
  const routes = new RouteTable(loaded.config.routes.map((r) => ({ ...r, upstream: r.upstream ?? r.upstreams?.[0] ?? '', upstreams: undefined })))
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  const engine = await createEngine(loaded, logger, metrics, routes)
  // The app serves what no route covers, so such a request is judged by `default` or refused.
  const context = { config: loaded.config, store: engine.store, routes, unroutedPolicy: 'default' }
  return {
    ...engine,
    metrics,
    choosePolicy,
    explain: (query) => explain(context, query, { policy: query.policy }),
    judge: (request, upgrade) => {
      const raw = request.raw
      const kind = requestKind({ method: raw.method!, headers: raw.headers }, upgrade)
      return judgeRequest(context, { method: raw.method!, url: raw.url!, headers: raw.headers, encrypted: isEncrypted(raw) }, kind, choosePolicy?.(request))
    }
  }
}
