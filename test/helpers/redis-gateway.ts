// Shared pieces of the Redis source tests: a gateway wired to a test Redis, and bounded waits
// on what the gateway enforces (each step awaits a real /explain answer; no fixed sleeps).
import { startTestGateway, type GatewayConfigInput, type TestGateway } from './gateway.js'
import type { TestRedis } from './redis-server.js'

let prefixes = 0
/** A key prefix of its own per test, so tests never see each other's keys. */
export function uniquePrefix (): string {
  return `cgtest${process.pid}-${++prefixes}:`
}

export async function startRedisGateway (redis: TestRedis, input: GatewayConfigInput & { redisOptions?: Record<string, unknown> } = {}): Promise<TestGateway> {
  const { redisOptions, ...rest } = input
  return await startTestGateway({
    policies: { default: { origins: ['https://app.example.com'] } },
    routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }],
    ...rest,
    redis: { url: redis.url, pollIntervalMs: 60_000, ...redisOptions }
  })
}

export interface Verdict {
  allowed: boolean
  reason: string
  rule: string | null
  ruleSource: string | null
}

export async function explainOrigin (gw: TestGateway, origin: string): Promise<Verdict> {
  const res = await fetch(`${gw.adminUrl}/explain?origin=${encodeURIComponent(origin)}&path=/`)
  return await res.json() as Verdict
}

/** Polls `check` until it returns true or `timeoutMs` passes; returns the time it took (ms). */
export async function waitFor (check: () => Promise<boolean> | boolean, timeoutMs = 5000, what = 'condition'): Promise<number> {
  const start = performance.now()
  for (;;) {
    if (await check()) return performance.now() - start
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Waits until the gateway allows (or denies) `origin`; returns how long that took (ms). */
export async function waitForVerdict (gw: TestGateway, origin: string, allowed: boolean, timeoutMs = 5000): Promise<number> {
  return await waitFor(async () => (await explainOrigin(gw, origin)).allowed === allowed, timeoutMs, `${origin} to be ${allowed ? 'allowed' : 'denied'}`)
}

/** Waits for the Redis source to have loaded at least once (first full resync). */
export async function waitForRedisLoaded (gw: TestGateway, timeoutMs = 5000): Promise<void> {
  await waitFor(async () => {
    const res = await fetch(`${gw.adminUrl}/policies`)
    const body = await res.json() as { sources: { redis?: { loaded: boolean, state: string, subscribed: boolean } } }
    return body.sources.redis?.loaded === true && body.sources.redis.state === 'fresh' && body.sources.redis.subscribed
  }, timeoutMs, 'the Redis source to load')
}
