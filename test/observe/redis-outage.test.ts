// Redis killed mid-run and started again: the counts made while it was away wait in the
// replica's table and reach Redis after the reconnect, none lost and none twice. The server
// keeps an append-only file, so what was flushed before the kill survives it too.
import { mkdtempSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { readObservedCounts } from '../../src/observe/observed-reader.js'
import { requestsOf } from '../../src/observe/observed-report.js'
import { send } from '../helpers/http.js'
import { startRedis } from '../helpers/redis-server.js'
import { startRedisGateway, uniquePrefix, waitFor } from '../helpers/redis-gateway.js'
import { startUpstream } from '../helpers/upstream.js'

const external = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? 'needs a redis-server of its own (REDIS_URL is set)' : false

t.test('an outage mid-run, then reconnect: no count lost, none doubled', { skip: external }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-aof-'))
  const redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir] })
  t.teardown(redis.close)
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const prefix = uniquePrefix()
  const gw = await startRedisGateway(redis, {
    routes: [{ path: '/', upstream: upstream.url }],
    observe: { flushIntervalMs: 100 },
    redisOptions: { keyPrefix: prefix, reconnectMaxDelayMs: 100 }
  })
  t.teardown(gw.close)
  const flusher = gw.observed!.flusher!

  const total = async (): Promise<Record<string, number>> => {
    const counts = await readObservedCounts(redis.client, prefix, 'default', 3_600_000, Date.now())
    return Object.fromEntries([...counts.values()].map((a) => [a.key, requestsOf(a)]))
  }
  const hit = async (origin: string | undefined, n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await send(`${gw.url}/x`, { headers: origin === undefined ? {} : { origin } })
  }

  await hit('https://app.example.com', 20)
  await waitFor(async () => (await total())['https://app.example.com'] === 20, 30_000, 'the first 20 in Redis')

  await redis.kill9()
  await waitFor(() => !flusher.connected, 30_000, 'the flusher to see Redis gone')
  await hit('https://app.example.com', 30)
  await hit('https://late.example.org', 4)
  await hit(undefined, 3)
  const row = gw.observed!.observer.table('default')!.rows.get('https://app.example.com')!
  // A forwarded request is recorded when its response closes: wait for the last one.
  await waitFor(() => row.requests === 50, 10_000, 'all 50 counted locally')
  t.equal(await flusher.flush(), undefined, 'a flush while Redis is down sends nothing')
  t.notOk(row.settled, '30 of them waiting for Redis')

  // Redis comes back (with what it had before the kill); the next flush sends what waited.
  await redis.restart()
  await waitFor(async () => {
    try {
      const now = await total()
      return now['https://app.example.com'] === 50 && now['https://late.example.org'] === 4 && now['(none)'] === 3
    } catch { return false }
  }, 30_000, 'the waiting counts in Redis')
  // Redis may have applied the EXEC a moment before its answer reaches the flusher.
  await waitFor(() => row.settled, 10_000, 'the row to be settled once Redis answered')
  t.pass('settled once Redis answered')

  // Another flush after the catch-up adds nothing.
  await hit('https://app.example.com', 1)
  await once(flusher, 'flushed')
  await waitFor(async () => (await total())['https://app.example.com'] === 51, 30_000, 'one more')
  t.same(await total(), { 'https://app.example.com': 51, 'https://late.example.org': 4, '(none)': 3 }, 'exact: nothing lost, nothing twice')
})
