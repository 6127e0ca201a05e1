// Edits in force through keyspace notifications alone: the server has them on, nobody
// publishes the reload channel, and the poll interval is far longer than the test.
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { explainOrigin, startRedisGateway, uniquePrefix, waitFor, waitForRedisLoaded, waitForVerdict } from '../helpers/redis-gateway.js'

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

t.test('keyspace notifications turned on while corsgate runs: /readyz follows (read again on every poll)', { skip: process.env.REDIS_URL ? 'would change the server config of REDIS_URL' : false }, async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  // A short poll: the setting is read again on every poll. Edits below then arrive by keyspace
  // events; the reload channel is never published.
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix, pollIntervalMs: 200 } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  const keyspace = async (): Promise<unknown> => {
    const ready = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { sources: { redis: { keyspaceEvents: unknown } } }
    return ready.sources.redis.keyspaceEvents
  }
  t.equal(await keyspace(), 'disabled', 'off on the server: /readyz says disabled')
  await redis.client.config('SET', 'notify-keyspace-events', 'KA')
  await waitFor(async () => await keyspace() === 'enabled', 10_000, '/readyz to say keyspace events are enabled')
  t.pass('/readyz says enabled after an operator turned them on')
  t.equal(gw.logs.filter((l) => /keyspace notifications are off/.test(String(l.msg))).length, 1, 'the "off" finding was logged once, not on every poll')
  t.ok(gw.logs.some((l) => /keyspace notifications are on/.test(String(l.msg))), 'the change is logged')
  await redis.client.config('SET', 'notify-keyspace-events', '')
  await waitFor(async () => await keyspace() === 'disabled', 10_000, '/readyz to say disabled again')
  t.pass('and follows them being turned off')
})
