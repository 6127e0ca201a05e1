// Edits in force through the reload channel alone: no keyspace notifications on the server,
// and a poll interval far longer than the test.
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { explainOrigin, startRedisGateway, uniquePrefix, waitForRedisLoaded, waitForVerdict } from '../helpers/redis-gateway.js'

t.test('SADD, SREM and deny take effect when the reload channel is published', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)

  const origin = 'https://partner.example.org'
  t.equal((await explainOrigin(gw, origin)).allowed, false, 'not allowed before the edit')

  await redis.client.sadd(`${prefix}policy:default:origins`, origin)
  await redis.client.publish(`${prefix}reload`, 'default')
  await waitForVerdict(gw, origin, true, 2000)
  const v = await explainOrigin(gw, origin)
  t.equal(v.rule, origin)
  t.equal(v.ruleSource, 'redis', 'the matching rule names Redis as its source')

  await redis.client.sadd(`${prefix}policy:default:deny`, 'https://app.example.com')
  await redis.client.publish(`${prefix}reload`, '*')
  await waitForVerdict(gw, 'https://app.example.com', false, 2000)
  t.equal((await explainOrigin(gw, 'https://app.example.com')).reason, 'denylisted', 'a Redis deny wins over a file origin')

  await redis.client.srem(`${prefix}policy:default:origins`, origin)
  await redis.client.srem(`${prefix}policy:default:deny`, 'https://app.example.com')
  await redis.client.publish(`${prefix}reload`, 'default')
  await waitForVerdict(gw, origin, false, 2000)
  await waitForVerdict(gw, 'https://app.example.com', true, 2000)

  const policies = await (await fetch(`${gw.adminUrl}/policies`)).json() as { sources: { redis: Record<string, unknown> } }
  t.equal(policies.sources.redis.keyspaceEvents, 'disabled', 'keyspace notifications were detected as off')
  t.equal(policies.sources.redis.state, 'fresh')
})

t.test('a reload message for a policy that is not in the config is ignored', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix }, log: { level: 'debug' } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  const version = gw.store.snapshot.version
  await redis.client.publish(`${prefix}reload`, 'nosuchpolicy')
  await redis.client.publish(`${prefix}reload`, 'nosuchpolicy')
  // A known name after it: once it has been handled, the unknown ones were seen too.
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://b.example.org')
  await redis.client.publish(`${prefix}reload`, 'default')
  await waitForVerdict(gw, 'https://b.example.org', true, 2000)
  t.equal(gw.store.snapshot.version, version + 1, 'one swap: only the known policy caused a reload')
  t.equal(gw.logs.filter((l) => l.policy === 'nosuchpolicy').length, 1, 'one debug line for the unknown policy')
})
