// What judges requests, wherever corsgate runs (the standalone gateway, or the Fastify plugin
// inside someone else's app): the live policy store, the route table, the Redis source that
// feeds the store and the state it reports, the metrics, and the observed origins.
import type { Logger } from 'pino'
import type { SourceStatus } from './admin/app.js'
import type { GatewayMetrics } from './admin/metrics.js'
import { ConfigError, type LoadedConfig } from './config/load.js'
import { RouteTable } from './gateway/route-table.js'
import { createObservedOrigins, type ObservedOrigins } from './observe/observed-origins.js'
import { PolicyStore } from './sources/policy-store.js'
// Type-only: the Redis source (and ioredis, ~10 MB of RSS) is loaded only when configured.
import type { RedisPolicySource, RedisSourceState } from './sources/redis.js'

export interface Engine {
  readonly loaded: LoadedConfig
  readonly store: PolicyStore
  readonly routes: RouteTable
  readonly metrics: GatewayMetrics
  /** The Redis source, when `redis` is configured. */
  readonly redis: RedisPolicySource | undefined
  /** Observed origins (undefined when `observe.enabled` is off). */
  readonly observed: ObservedOrigins | undefined
  /** What `/readyz` and `/policies` report of each dynamic source. */
  readonly sources: () => Record<string, SourceStatus>
  /** Starts reading Redis and flushing observed origins. */
  start: () => void
  /** Stops both; safe to call twice. */
  stop: () => Promise<void>
}

export async function createEngine (loaded: LoadedConfig, logger: Logger, metrics: GatewayMetrics, routes = new RouteTable(loaded.config.routes, loaded.config.server.upstreamConnections)): Promise<Engine> {
  const { config } = loaded
  const store = new PolicyStore(loaded, logger)
  metrics.observeReload(store.snapshot, store.lastReload)
  store.on('swap', (snapshot, record) => metrics.observeReload(snapshot, record))
  store.on('entryError', (_e, source) => metrics.skippedEntries.inc({ source }))

  const sources: Record<string, SourceStatus> = {}
  // Live whitelists from Redis: started without awaiting the first load, so the file's
  // policies are served while Redis is down; no request ever waits for Redis.
  let redis: RedisPolicySource | undefined
  if (config.redis !== undefined && (config.redis.url !== undefined || config.redis.sentinels !== undefined)) {
    const [{ RedisPolicySource }, { RedisConfigError }] = await Promise.all([import('./sources/redis.js'), import('./sources/redis-connection.js')])
    let source: RedisPolicySource
    try {
      source = new RedisPolicySource({ redis: config.redis, store, logger })
    } catch (err) {
      // An unreadable password or CA file is a configuration error (exit 2), named by field.
      if (err instanceof RedisConfigError) throw new ConfigError(loaded.file, [err.message])
      throw err
    }
    const pollIntervalMs = config.redis.pollIntervalMs
    const iso = (t: number | undefined): string | null => t === undefined ? null : new Date(t).toISOString()
    const report = (s: Readonly<RedisSourceState>): void => {
      metrics.redisConnected.set(s.connected ? 1 : 0)
      sources.redis = {
        loaded: s.loaded,
        detail: {
          target: source.target,
          state: s.stale ? 'stale' : 'fresh',
          connected: s.connected,
          subscribed: s.subscribed,
          staleSince: iso(s.staleSince),
          lastError: s.lastError ?? null,
          lastLoadAt: iso(s.lastLoadAt),
          lastChangeAt: iso(s.lastChangeAt),
          keyspaceEvents: s.keyspaceEvents,
          pollIntervalMs,
          entries: s.entries,
          invalidEntries: s.invalidEntries
        }
      }
    }
    report(source.state)
    source.on('state', report)
    source.on('loaded', () => metrics.lastSourceLoad.set({ source: 'redis' }, Date.now() / 1000))
    source.on('loadError', () => metrics.reloads.inc({ source: 'redis', result: 'error' }))
    redis = source
  }
  const observed = await createObservedOrigins(config, logger)
  const observer = observed?.observer
  if (observer !== undefined) metrics.countObservedDrops(() => observer.dropped())

  let stopped: Promise<void> | undefined
  return {
    loaded,
    store,
    routes,
    metrics,
    redis,
    observed,
    sources: () => sources,
    start: () => {
      redis?.start()
      observed?.start()
    },
    stop: async () => {
      stopped ??= (async () => {
        await observed?.stop()
        await redis?.stop()
      })()
      await stopped
    }
  }
}
