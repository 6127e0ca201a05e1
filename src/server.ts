// Wires corsgate: policy store, public gateway, admin server, and shutdown.
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildAdmin, type SourceReloads } from './admin/app.js'
import { readAdminToken } from './admin/auth.js'
import { GatewayMetrics } from './admin/metrics.js'
import { referencedFileProblems } from './config/files.js'
import { ConfigError, type LoadedConfig } from './config/load.js'
import { buildGateway } from './gateway/app.js'
import type { CertificateSummary } from './gateway/certificates.js'
import { DecisionLog } from './gateway/decision-log.js'
import { loadPlugins, type GatewayPlugin } from './gateway/plugins.js'
import type { ObservedOrigins } from './observe/observed-origins.js'
import type { RouteTable } from './gateway/route-table.js'
import { ConfigFileSource } from './sources/config-file.js'
import type { PolicyStore } from './sources/policy-store.js'
import { createEngine } from './engine.js'
import { createLogger } from './logger.js'
import { publicListenOptions } from './workers.js'

export { createLogger }

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

export async function startGateway ({ loaded, logger = createLogger(loaded.config), metrics = new GatewayMetrics(), plugins = [], watchConfig = false }: StartOptions): Promise<RunningGateway> {
  const { config } = loaded
  // loadConfig checks these too; a config parsed from text (library use, tests) is checked here.
  const fileProblems = referencedFileProblems(config)
  if (fileProblems.length > 0) throw new ConfigError(loaded.file, fileProblems)
  for (const warning of loaded.warnings) logger.warn({ file: loaded.file }, warning)
  // The token is read once here and never logged; no token, no start (never an open admin port by mistake).
  let token: string | undefined
  if (config.admin.auth !== undefined) {
    const read = readAdminToken(config.admin.auth, process.env)
    if (read instanceof Error) throw new ConfigError(loaded.file, [read.message])
    token = read
  }

  let closing = false
  const isClosing = (): boolean => closing
  const engine = await createEngine(loaded, logger, metrics)
  const { store, routes, redis, observed } = engine
  // The last reload of each source and its last success, for the admin page.
  const reloads: Record<string, SourceReloads> = { file: { last: store.lastReload, lastOkAt: store.lastReload.at } }
  const noteReload = (source: string, result: 'ok' | 'partial' | 'error', at: number, errors: number): void => {
    reloads[source] = { last: { source, result, at, errors }, lastOkAt: result === 'error' ? reloads[source]?.lastOkAt : at }
  }
  store.on('swap', (_snapshot, record) => noteReload(record.source, record.result, record.at, record.errors))
  redis?.on('loaded', (record) => {
    // A read that found nothing changed is a good reload too (the swap event saw the others).
    if (record === undefined) noteReload('redis', reloads.redis?.last.result === 'partial' ? 'partial' : 'ok', Date.now(), reloads.redis?.last.errors ?? 0)
  })
  redis?.on('loadError', () => noteReload('redis', 'error', Date.now(), 0))
  const configPlugins = await loadPlugins(config, loaded.file)
  const observer = observed?.observer
  const decisions = new DecisionLog()
  const gateway = await buildGateway({ config, store, routes, metrics, logger, isClosing, observer, decisions, plugins: [...configPlugins, ...plugins], configFile: loaded.file })
  const admin = await buildAdmin({ config, store, routes, metrics, logger, isClosing, sources: engine.sources, observed, decisions, reloads: () => reloads, token })

  await admin.listen({ host: config.admin.host, port: config.admin.port })
  try {
    // In a `server.workers` worker, each may bind the port itself (src/workers.ts).
    await gateway.listen({ host: config.server.host, port: config.server.port, ...publicListenOptions() })
  } catch (err) {
    await admin.close()
    throw err
  }
  engine.start()
  let configFile: ConfigFileSource | undefined
  if (watchConfig !== false) {
    configFile = new ConfigFileSource({ store, logger, signal: watchConfig === true || watchConfig.signal })
    configFile.on('reloaded', (outcome) => {
      if (outcome.result === 'error') {
        metrics.reloads.inc({ source: 'file', result: 'error' })
        noteReload('file', 'error', Date.now(), 0)
      }
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
      await engine.stop()
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
