// Starts a real corsgate (public + admin servers on port 0) from a config object.
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { parseConfig } from '../../src/config/load.js'
import { startGateway, type RunningGateway } from '../../src/server.js'

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
  observe?: Record<string, unknown>
}

/** A config document: servers on port 0 and loopback, the given policies and routes. */
export function testConfigYaml (input: GatewayConfigInput): string {
  return stringify({
    server: { host: '127.0.0.1', port: 0, ...input.server },
    admin: { host: '127.0.0.1', port: 0 },
    log: { level: 'info', ...input.log },
    ...(input.redis === undefined ? {} : { redis: input.redis }),
    ...(input.websocket === undefined ? {} : { websocket: input.websocket }),
    ...(input.observe === undefined ? {} : { observe: input.observe }),
    policies: input.policies ?? { default: { origins: ['https://app.example.com'] } },
    routes: input.routes ?? []
  })
}

export async function startTestGateway (input: GatewayConfigInput, env: Record<string, string> = {}): Promise<TestGateway> {
  const loaded = parseConfig(testConfigYaml(input), 'test.yaml', env)
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    }
  })
  const logger = pino({ level: loaded.config.log.level }, sink)
  const running = await startGateway({ loaded, logger })
  return Object.assign(running, { logs })
}
