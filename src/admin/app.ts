// The admin server: health, readiness, metrics, effective policies, explain. Never on the
// public port (SPEC.md "Admin endpoints").
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import { explain } from '../gateway/explain.js'
import type { RouteTable } from '../gateway/route-table.js'
import type { PolicyStore } from '../sources/policy-store.js'
import type { ObservedOrigins } from '../observe/observed-origins.js'
import type { GatewayMetrics } from './metrics.js'
import { observedRoutes } from './observed.js'

export interface SourceStatus {
  /** The source has loaded at least once (or needs no loading). */
  loaded: boolean
  /** Detail for `/readyz` and `/policies`: state, stale since, last error. */
  detail: Record<string, unknown>
}

export interface AdminOptions {
  config: Config
  store: PolicyStore
  routes: RouteTable
  metrics: GatewayMetrics
  logger: Logger
  /** Status of the dynamic sources (Redis), by name. */
  sources: () => Record<string, SourceStatus>
  isClosing: () => boolean
  /** Observed origins, for `/observed` and `/diff` (undefined when `observe.enabled` is off). */
  observed?: ObservedOrigins | undefined
}

export async function buildAdmin (opts: AdminOptions): Promise<FastifyInstance> {
  const { config, store, metrics } = opts
  const app = Fastify({ loggerInstance: opts.logger.child({ server: 'admin' }) as unknown as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) })

  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    const sources = opts.sources()
    const redisRequired = config.redis?.required === true
    const waiting = redisRequired && sources.redis?.loaded !== true
    const ready = !opts.isClosing() && !waiting
    reply.code(ready ? 200 : 503)
    return {
      status: ready ? 'ready' : 'not_ready',
      config: 'loaded',
      closing: opts.isClosing(),
      sources: Object.fromEntries(Object.entries(sources).map(([name, s]) => [name, { loaded: s.loaded, required: name === 'redis' && redisRequired, ...s.detail }]))
    }
  })

  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType)
    return await metrics.registry.metrics()
  })

  app.get('/policies', async () => {
    const snapshot = store.snapshot
    return {
      version: snapshot.version,
      builtAt: new Date(snapshot.builtAt).toISOString(),
      lastReload: { ...store.lastReload, at: new Date(store.lastReload.at).toISOString() },
      sources: Object.fromEntries(Object.entries(opts.sources()).map(([name, s]) => [name, { loaded: s.loaded, ...s.detail }])),
      routes: opts.routes.routes.map((r) => ({ path: r.path, host: r.host ?? null, upstream: r.upstream, websocket: r.websocket, policy: r.policy })),
      policies: Object.fromEntries([...snapshot.policies].map(([name, p]) => {
        const { origins: _o, deny: _d, ...settings } = p.config
        const list = (m: typeof p.allow): Array<Record<string, unknown>> => [...m.entries()].map((e) => ({
          pattern: e.pattern.text,
          source: e.source,
          ...(e.expiresAt === undefined ? {} : { expiresAt: new Date(e.expiresAt).toISOString(), expired: e.expiresAt <= Date.now() })
        }))
        return [name, { ...settings, origins: list(p.allow), deny: list(p.deny) }]
      }))
    }
  })

  app.get<{ Querystring: { origin?: string, path?: string, method?: string, header?: string | string[], host?: string } }>('/explain', async (request) => {
    const q = request.query
    const headers = q.header === undefined ? [] : Array.isArray(q.header) ? q.header : q.header.split(',')
    return explain(opts, { origin: q.origin, path: q.path, method: q.method, headers, host: q.host })
  })

  await observedRoutes(app, { config, store, observed: opts.observed })

  return app
}
