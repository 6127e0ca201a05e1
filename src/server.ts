// Wires corsgate: policy store, public gateway, admin server, and shutdown.
import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import { buildAdmin, type SourceStatus } from './admin/app.js'
import { GatewayMetrics } from './admin/metrics.js'
import { referencedFileProblems } from './config/files.js'
import { ConfigError, type LoadedConfig } from './config/load.js'
import type { Config } from './config/schema.js'
import { buildGateway } from './gateway/app.js'
import type { CertificateSummary } from './gateway/certificates.js'
import { loadPlugins, type GatewayPlugin } from './gateway/plugins.js'
import { createObservedOrigins, type ObservedOrigins } from './observe/observed-origins.js'
import { RouteTable } from './gateway/route-table.js'
import { ConfigFileSource } from './sources/config-file.js'
import { PolicyStore } from './sources/policy-store.js'
// Type-only: the Redis source (and ioredis, ~10 MB of RSS) is loaded only when configured.
import type { RedisPolicySource, RedisSourceState } from './sources/redis.js'

export interface RunningGateway {
  gateway: FastifyInstance
  admin: FastifyInstance
  store: PolicyStore
  routes: RouteTable
  metrics: GatewayMetrics
  /** Observed origins (undefined when `observe.enabled` is off). */
  observed: ObservedOrigins | undefined
  /** `http://host:port` of the public and admin servers. */
  url: string
  adminUrl: string
  /** The config file reloader, when `watchConfig` was asked for. */
  configFile: ConfigFileSource | undefined
  /** Drains in-flight requests, then stops everything. Safe to call twice. */
  close: () => Promise<void>
}

export interface StartOptions {
  loaded: LoadedConfig
  /** Plugins given by code, registered after the config's. */
  plugins?: readonly GatewayPlugin[]
  logger?: Logger
  metrics?: GatewayMetrics
  /**
   * Reload the config file's policies when it changes, and on SIGHUP unless `signal: false`
   * (src/sources/config-file.ts). `corsgate start` asks for it; off by default for library use.
   */
  watchConfig?: boolean | { signal: boolean }
}

/** Log lines never carry secrets: credentials in headers or URLs are censored. */
export function createLogger (config: Config): Logger {
  return pino({
    level: config.log.level,
    redact: {
      paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["proxy-authorization"]', 'headers.authorization', 'headers.cookie', 'redisUrl', 'password'],
      censor: '[redacted]'
    }
  })
}

export async function startGateway ({ loaded, logger = createLogger(loaded.config), metrics = new GatewayMetrics(), plugins = [], watchConfig = false }: StartOptions): Promise<RunningGateway> {
  const { config } = loaded
  // loadConfig checks these too; a config parsed from text (library use, tests) is checked here.
  const fileProblems = referencedFileProblems(config)
  if (fileProblems.length > 0) throw new ConfigError(loaded.file, fileProblems)
  for (const warning of loaded.warnings) logger.warn({ file: loaded.file }, warning)

  let closing = false
  const isClosing = (): boolean => closing
  const store = new PolicyStore(loaded, logger)
  const routes = new RouteTable(config.routes, config.server.upstreamConnections)
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
    source.on('loadError', () => metrics.reloads.inc({ source: 'redis', result: 'error' }))
    redis = source
  }
  const configPlugins = await loadPlugins(config, loaded.file)
  const observed = await createObservedOrigins(config, logger)
  const observer = observed?.observer
  if (observer !== undefined) metrics.countObservedDrops(() => observer.dropped())
  const gateway = await buildGateway({ config, store, routes, metrics, logger, isClosing, observer, plugins: [...configPlugins, ...plugins], configFile: loaded.file })
  const admin = await buildAdmin({ config, store, routes, metrics, logger, isClosing, sources: () => sources, observed })

  await admin.listen({ host: config.admin.host, port: config.admin.port })
  try {
    await gateway.listen({ host: config.server.host, port: config.server.port })
  } catch (err) {
    await admin.close()
    throw err
  }
  redis?.start()
  observed?.start()
  let configFile: ConfigFileSource | undefined
  if (watchConfig !== false) {
    configFile = new ConfigFileSource({ store, logger, signal: watchConfig === true || watchConfig.signal })
    configFile.on('reloaded', (outcome) => {
      if (outcome.result === 'error') metrics.reloads.inc({ source: 'file', result: 'error' })
      // New policy names: read their Redis keys now rather than at the next poll.
      if (outcome.result === 'ok') redis?.requestReload('config')
    })
    configFile.start()
  }
  const url = addressOf(gateway, gateway.publicServer.certificates === undefined ? 'http' : 'https')
  const adminUrl = addressOf(admin, 'http')
  const certificates = gateway.publicServer.certificates
  const tls = certificates === undefined ? undefined : { http2: gateway.publicServer.http2, ...certificates.summary }
  if (certificates !== undefined) {
    const expiry = (notAfter: string): void => { metrics.tlsCertificateExpiry.set(Date.parse(notAfter) / 1000) }
    expiry(certificates.summary.notAfter)
    certificates.on('reloaded', (summary: CertificateSummary) => { metrics.tlsReloads.inc({ result: 'ok' }); expiry(summary.notAfter) })
    certificates.on('rejected', () => { metrics.tlsReloads.inc({ result: 'rejected' }) })
  }
  logger.info({ url, adminUrl, tls, routes: routes.routes.map((r) => `${r.label} → ${r.upstream}`), policies: [...store.snapshot.policies.keys()] }, 'corsgate listening')

  let closed: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closed ??= (async () => {
      closing = true
      configFile?.stop()
      logger.info('draining')
      await drain(gateway, Math.floor(config.server.shutdownGraceMs * 0.8), logger)
      await admin.close()
      await observed?.stop()
      await redis?.stop()
      logger.info('stopped')
    })()
    return await closed
  }
  return { gateway, admin, store, routes, metrics, observed, url, adminUrl, configFile, close }
}

/**
 * Closes the public server, letting in-flight requests finish. A request still open at the
 * deadline (a Socket.IO long-poll waits up to its ping interval) has its connection closed,
 * so shutdown always ends cleanly inside `shutdownGraceMs` instead of being killed.
 */
async function drain (gateway: FastifyInstance, deadlineMs: number, logger: Logger): Promise<void> {
  const closed = gateway.close()
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(resolve, deadlineMs, true) })
  if (await Promise.race([closed.then(() => false), timedOut])) {
    logger.warn({ deadlineMs }, 'drain deadline reached: closing the connections still open')
    gateway.publicServer.closeAllConnections()
  }
  clearTimeout(timer)
  await closed
}

function addressOf (app: FastifyInstance, scheme: 'http' | 'https'): string {
  const address = app.server.address()
  if (address === null || typeof address === 'string') return String(address)
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `${scheme}://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`
}
