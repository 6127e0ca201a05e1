// The admin server: health, readiness, metrics, effective policies, explain, and the page
// that shows them. Never on the public port (SPEC.md "Admin endpoints", "The admin page").
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import { explain } from '../gateway/explain.js'
import type { RouteTable } from '../gateway/route-table.js'
import type { PolicyStore } from '../sources/policy-store.js'
import type { ObservedOrigins } from '../observe/observed-origins.js'
import type { DecisionLog } from '../gateway/decision-log.js'
import { AdminAuth } from './auth.js'
import type { GatewayMetrics } from './metrics.js'
import { observedRoutes } from './observed.js'
import { overview, readiness, type SourceReloads, type SourceStatus } from './overview.js'
import { pageRoutes } from './page.js'

export type { SourceReloads, SourceStatus }

// Every admin answer: the page runs only its own script and style, talks only to this server,
// and cannot be framed; no answer is sniffed into something it is not.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store'
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
  /** The last reload of each source, for `/overview`. */
  reloads?: () => Record<string, SourceReloads>
  /** Recent decisions, for `/decisions` (the page's live view). */
  decisions?: DecisionLog | undefined
  /** The `admin.auth` token, read at start; undefined when `admin.auth` is not set. */
  token?: string | undefined
}

export async function buildAdmin (opts: AdminOptions): Promise<FastifyInstance> {
  const { config, store, metrics } = opts
  const app = Fastify({ loggerInstance: opts.logger.child({ server: 'admin' }) as unknown as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) })

  const auth = opts.token === undefined ? undefined : new AdminAuth(opts.token, config.admin.auth?.openMetrics === true)
  if (auth !== undefined) {
    app.addHook('onRequest', async (request, reply) => {
      if (!auth.guards(request.url.split('?')[0]!) || auth.accepts(request.headers.authorization)) return
      // Basic too, so that a browser asks for the token (as the password) instead of showing a bare 401.
      reply.code(401).header('www-authenticate', ['Bearer realm="corsgate admin"', 'Basic realm="corsgate admin", charset="UTF-8"'])
      return await reply.send({ error: 'unauthorized', statusCode: 401 })
    })
  }
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.headers(SECURITY_HEADERS)
    return payload
  })

  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (request, reply) => {
    const sources = opts.sources()
    const redisRequired = config.redis?.required === true
    const { ready } = readiness(config, sources, opts.isClosing())
    // Open to probes even under admin.auth; the sources' detail (the Redis address, its last
    // error) only with the token.
    const detailed = auth === undefined || auth.accepts(request.headers.authorization)
    reply.code(ready ? 200 : 503)
    return {
      status: ready ? 'ready' : 'not_ready',
      config: 'loaded',
      closing: opts.isClosing(),
      sources: Object.fromEntries(Object.entries(sources).map(([name, s]) => [name, { loaded: s.loaded, required: name === 'redis' && redisRequired, ...(detailed ? s.detail : {}) }]))
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

  app.get('/overview', async () => await overview({ ...opts, reloads: opts.reloads ?? (() => ({})) }))

  // The live view polls this with the last `seq` it has seen.
  app.get<{ Querystring: { after?: string, limit?: string } }>('/decisions', async (request) => {
    const log = opts.decisions
    if (log === undefined) return { last: 0, capacity: 0, decisions: [] }
    const after = Number(request.query.after ?? 0)
    const limit = Number(request.query.limit ?? log.capacity)
    const records = log.since(Number.isFinite(after) ? after : 0, Number.isFinite(limit) && limit > 0 ? limit : log.capacity)
    return { last: log.last, capacity: log.capacity, decisions: records.map((r) => ({ ...r, at: new Date(r.at).toISOString() })) }
  })

  await observedRoutes(app, { config, store, observed: opts.observed })
  pageRoutes(app)

  return app
}
