// Edits in force through keyspace notifications alone: the server has them on, nobody
// publishes the reload channel, and the poll interval is far longer than the test.
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { explainOrigin, startRedisGateway, uniquePrefix, waitForRedisLoaded, waitForVerdict } from '../helpers/redis-gateway.js'

t.test('SADD, SREM, deny and DEL take effect through keyspace events, without a publish', async (t) => {
  const redis = await startRedis({ args: ['--notify-keyspace-events', 'KA'] })
  t.teardown(redis.close)
  if (redis.external) await redis.client.config('SET', 'notify-keyspace-events', 'KA')
  const prefix = uniquePrefix()
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  const policies = await (await fetch(`${gw.adminUrl}/policies`)).json() as { sources: { redis: Record<string, unknown> } }
  t.equal(policies.sources.redis.keyspaceEvents, 'enabled', 'detected with CONFIG GET')

  const origin = 'https://ks.example.org'
  await redis.client.sadd(`${prefix}policy:default:origins`, origin)
  await waitForVerdict(gw, origin, true, 2000)
  t.pass('SADD in force')

  await redis.client.sadd(`${prefix}policy:default:deny`, origin)
  await waitForVerdict(gw, origin, false, 2000)
  t.equal((await explainOrigin(gw, origin)).reason, 'denylisted', 'deny in force')

  await redis.client.del(`${prefix}policy:default:deny`)
  await waitForVerdict(gw, origin, true, 2000)
  t.pass('DEL of the deny set in force')

  await redis.client.srem(`${prefix}policy:default:origins`, origin)
  await waitForVerdict(gw, origin, false, 2000)
  t.equal((await explainOrigin(gw, 'https://app.example.com')).allowed, true, 'file origins untouched')
})

t.test('a burst of edits is coalesced: far fewer compiles than edits', async (t) => {
  const redis = await startRedis({ args: ['--notify-keyspace-events', 'KA'] })
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  const before = gw.store.snapshot.version
  const edits = Array.from({ length: 100 }, (_, i) => redis.client.sadd(`${prefix}policy:default:origins`, `https://burst${i}.example.org`))
  await Promise.all(edits)
  await waitForVerdict(gw, 'https://burst99.example.org', true, 3000)
  const swaps = gw.store.snapshot.version - before
  t.ok(swaps <= 10, `100 edits caused ${swaps} swaps`)
  for (const i of [0, 42, 99]) t.equal((await explainOrigin(gw, `https://burst${i}.example.org`)).allowed, true)
})

t.test('redis.enableKeyspaceEvents turns notifications on with CONFIG SET (only when asked)', { skip: process.env.REDIS_URL ? 'would change the server config of REDIS_URL' : false }, async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix, enableKeyspaceEvents: true } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  const flags = await redis.client.config('GET', 'notify-keyspace-events') as string[]
  t.match(flags[1], /K/, 'keyspace class on')
  for (const c of 'gsz') t.ok(flags[1]?.includes(c), `event class ${c} on`)
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://set.example.org')
  await waitForVerdict(gw, 'https://set.example.org', true, 2000)
  t.pass('an edit propagates without a publish')
})
