// An existing Fastify gateway as its users build it: @fastify/http-proxy forwarding to a real
// upstream (websockets too), with corsgate's plugin (`corsgate/fastify`) registered first.
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import proxy from '@fastify/http-proxy'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify'
import { pino } from 'pino'
import type { ClientOptions } from 'ws'
import corsgate, { type CorsgatePluginOptions } from '../../src/fastify.js'

export interface EmbeddedGateway {
  app: FastifyInstance
  url: string
  /** Parsed NDJSON log lines of the app's logger. */
  logs: Array<Record<string, unknown>>
  close: () => Promise<void>
}

export interface EmbeddedGatewayInput {
  /** The corsgate config object (policies, routes without upstreams, redis, …). */
  config: Record<string, unknown>
  upstream: string
  /** Plugin options besides `config`. */
  options?: Omit<CorsgatePluginOptions, 'config'>
  /** Runs after corsgate and before the proxy: the app's own routes and hooks. */
  before?: (app: FastifyInstance) => Promise<void> | void
}

export async function startEmbeddedGateway (input: EmbeddedGatewayInput): Promise<EmbeddedGateway> {
  const logs: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    }
  })
  const app = Fastify({ loggerInstance: pino({ level: 'info' }, sink) as FastifyBaseLogger })
  await app.register(corsgate, { config: input.config, ...input.options })
  await input.before?.(app)
  await app.register(proxy, {
    upstream: input.upstream,
    websocket: true,
    // @fastify/http-proxy passes only the cookie on to a websocket upstream; a backend that
    // checks Origin itself needs it too (the README's example does the same).
    // (documented by @fastify/http-proxy, missing from its types).
    wsClientOptions: { rewriteRequestHeaders: (headers: Record<string, string>, request: FastifyRequest) => ({ ...headers, ...pick(request.headers, ['cookie', 'origin', 'authorization']) }) } as ClientOptions
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    app,
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    logs,
    close: async () => { await app.close() }
  }
}

function pick (headers: Record<string, string | string[] | undefined>, names: string[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const name of names) {
    const value = headers[name]
    if (value !== undefined) out[name] = value
  }
  return out
}
