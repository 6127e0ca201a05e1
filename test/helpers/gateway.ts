// Starts a real corsgate (public + admin servers on port 0) from a config object.
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { stringify } from 'yaml'
import type { FastifyInstance } from 'fastify'
import { GatewayMetrics } from '../../src/admin/metrics.js'
import { parseConfig } from '../../src/config/load.js'
import { buildGateway } from '../../src/gateway/app.js'
import { RouteTable } from '../../src/gateway/route-table.js'
import { startGateway, type RunningGateway, type StartOptions } from '../../src/server.js'
import { PolicyStore } from '../../src/sources/policy-store.js'

export interface TestGateway extends RunningGateway {
  /** Parsed NDJSON log lines written so far. */
  logs: Array<Record<string, unknown>>
}

export interface GatewayConfigInput {
  policies?: Record<string, Record<string, unknown>>
  routes?: Array<Record<string, unknown>>
  server?: Record<string, unknown>
  redis?: Record<string, unknown>
  log?: Record<string, unknown>
  websocket?: Record<string, unknown>
  plugins?: Array<Record<string, unknown>>
  observe?: Record<string, unknown>
  admin?: Record<string, unknown>
}

/** A config document: servers on port 0 and loopback, the given policies and routes. */
export function testConfigYaml (input: GatewayConfigInput): string {
  return stringify({
    server: { host: '127.0.0.1', port: 0, ...input.server },
    admin: { host: '127.0.0.1', port: 0, ...input.admin },
    log: { level: 'info', ...input.log },
    ...(input.redis === undefined ? {} : { redis: input.redis }),
    ...(input.websocket === undefined ? {} : { websocket: input.websocket }),
    ...(input.plugins === undefined ? {} : { plugins: input.plugins }),
    ...(input.observe === undefined ? {} : { observe: input.observe }),
    policies: input.policies ?? { default: { origins: ['https://app.example.com'] } },
    routes: input.routes ?? []
  })
}

/** A pino logger whose lines are parsed into `logs`. */
function capturingLogger (level: string): { logger: Logger, logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    }
  })
  return { logger: pino({ level }, sink) as Logger, logs }
}

export async function startTestGateway (input: GatewayConfigInput, env: Record<string, string> = {}, extra: Pick<StartOptions, 'plugins'> = {}): Promise<TestGateway> {
  const loaded = parseConfig(testConfigYaml(input), 'test.yaml', env)
  const { logger, logs } = capturingLogger(loaded.config.log.level)
  const running = await startGateway({ loaded, logger, ...extra })
  return Object.assign(running, { logs })
}

/**
 * The public gateway alone, built but not listening, as code that embeds corsgate gets it from
 * `buildGateway`: hooks and plugins can still be added before `listen`.
 */
export async function buildTestGateway (input: GatewayConfigInput): Promise<{ app: FastifyInstance, logs: Array<Record<string, unknown>>, listen: () => Promise<string> }> {
  const loaded = parseConfig(testConfigYaml(input), 'test.yaml', {})
  const { config } = loaded
  const { logger, logs } = capturingLogger(config.log.level)
  const app = await buildGateway({ config, store: new PolicyStore(loaded), routes: new RouteTable(config.routes, config.server.upstreamConnections), metrics: new GatewayMetrics(), logger, isClosing: () => false })
  return {
    app,
    logs,
    listen: async () => {
      await app.listen({ host: '127.0.0.1', port: 0 })
      const address = app.server.address() as { port: number }
      return `http://127.0.0.1:${address.port}`
    }
  }
}
