// Polling alone, the safety net: no keyspace notifications, no publish.
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { explainOrigin, startRedisGateway, uniquePrefix, waitFor, waitForRedisLoaded, waitForVerdict } from '../helpers/redis-gateway.js'

t.test('SADD, SREM and deny take effect by polling alone', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const pollIntervalMs = 200
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix, pollIntervalMs, enableKeyspaceEvents: false } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  // Keyspace notifications off (detected before the first load), and nothing is published
  // below: an edit that takes effect can only have been picked up by a poll.
  const readyz = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { sources: { redis: { keyspaceEvents: string } } }
  t.equal(readyz.sources.redis.keyspaceEvents, 'disabled', 'the source reports keyspace events disabled')

  const origin = 'https://poll.example.org'
  await redis.client.sadd(`${prefix}policy:default:origins`, origin)
  // The wait's bound is SPEC's promise (pollIntervalMs + 1 s): waitForVerdict throws past it.
  await waitForVerdict(gw, origin, true, pollIntervalMs + 1000)
  t.pass('SADD in force by polling alone')

  await redis.client.sadd(`${prefix}policy:default:deny`, 'https://app.example.com')
  await waitForVerdict(gw, 'https://app.example.com', false, pollIntervalMs + 1000)
  t.equal((await explainOrigin(gw, 'https://app.example.com')).reason, 'denylisted')

  await redis.client.srem(`${prefix}policy:default:origins`, origin)
  await waitForVerdict(gw, origin, false, pollIntervalMs + 1000)
  t.pass('SREM in force')
})

t.test('an unchanged whitelist is not recompiled on every poll', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://steady.example.org')
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix, pollIntervalMs: 100 } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  const version = gw.store.snapshot.version
  // Five more reads, counted by the server itself (each read is one MULTI/EXEC).
  const execs = async (): Promise<number> => Number(/cmdstat_exec:calls=(\d+)/.exec(await redis.client.info('commandstats'))?.[1] ?? 0)
  const start = await execs()
  await waitFor(async () => (await execs()) >= start + 5, 3000, 'five polls')
  t.equal(gw.store.snapshot.version, version, 'no swap while nothing changed')
})
