// Wires corsgate: policy store, public gateway, admin server, and shutdown.
import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import { buildAdmin, type SourceStatus } from './admin/app.js'
import { GatewayMetrics } from './admin/metrics.js'
import type { LoadedConfig } from './config/load.js'
import type { Config } from './config/schema.js'
import { buildGateway } from './gateway/app.js'
import { RouteTable } from './gateway/route-table.js'
import { PolicyStore } from './sources/policy-store.js'

export interface RunningGateway {
  gateway: FastifyInstance
  admin: FastifyInstance
  store: PolicyStore
  routes: RouteTable
  metrics: GatewayMetrics
  /** `http://host:port` of the public and admin servers. */
  url: string
  adminUrl: string
  /** Drains in-flight requests, then stops everything. Safe to call twice. */
  close: () => Promise<void>
}

export interface StartOptions {
  loaded: LoadedConfig
  logger?: Logger
  metrics?: GatewayMetrics
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

export async function startGateway ({ loaded, logger = createLogger(loaded.config), metrics = new GatewayMetrics() }: StartOptions): Promise<RunningGateway> {
  const { config } = loaded
  for (const warning of loaded.warnings) logger.warn({ file: loaded.file }, warning)

  let closing = false
  const isClosing = (): boolean => closing
  const store = new PolicyStore(loaded, logger)
  const routes = new RouteTable(config.routes)
  metrics.observeReload(store.snapshot, store.lastReload)
  store.on('swap', (snapshot, record) => metrics.observeReload(snapshot, record))
  store.on('entryError', (_e, source) => metrics.skippedEntries.inc({ source }))

  const sources: Record<string, SourceStatus> = {}
  const gateway = await buildGateway({ config, store, routes, metrics, logger, isClosing })
  const admin = await buildAdmin({ config, store, routes, metrics, logger, isClosing, sources: () => sources })

  await admin.listen({ host: config.admin.host, port: config.admin.port })
  try {
    await gateway.listen({ host: config.server.host, port: config.server.port })
  } catch (err) {
    await admin.close()
    throw err
  }
  const url = addressOf(gateway)
  const adminUrl = addressOf(admin)
  logger.info({ url, adminUrl, routes: routes.routes.map((r) => `${r.label} → ${r.upstream}`), policies: [...store.snapshot.policies.keys()] }, 'corsgate listening')

  let closed: Promise<void> | undefined
  const close = async (): Promise<void> => {
    closed ??= (async () => {
      closing = true
      logger.info('draining')
      await gateway.close()
      await admin.close()
      logger.info('stopped')
    })()
    return await closed
  }
  return { gateway, admin, store, routes, metrics, url, adminUrl, close }
}

function addressOf (app: FastifyInstance): string {
  const address = app.server.address()
  if (address === null || typeof address === 'string') return String(address)
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`
}
