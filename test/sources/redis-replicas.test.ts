// Three gateways on one Redis converge after an edit (the reload channel reaches them all).
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { startRedisGateway, uniquePrefix, waitForRedisLoaded, waitForVerdict } from '../helpers/redis-gateway.js'

t.test('three gateways on one Redis converge after an edit', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const gateways = await Promise.all([1, 2, 3].map(async () => await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })))
  for (const gw of gateways) t.teardown(gw.close)
  await Promise.all(gateways.map(async (gw) => await waitForRedisLoaded(gw)))

  const origin = 'https://replica.example.org'
  await redis.client.sadd(`${prefix}policy:default:origins`, origin)
  await redis.client.publish(`${prefix}reload`, 'default')
  // How fast is measured in bench/redis-propagation.ts; here only that all three converge.
  await Promise.all(gateways.map(async (gw) => await waitForVerdict(gw, origin, true, 10_000)))
  t.pass('all three allow it after the edit')

  await redis.client.sadd(`${prefix}policy:default:deny`, origin)
  await redis.client.publish(`${prefix}reload`, 'default')
  await Promise.all(gateways.map(async (gw) => await waitForVerdict(gw, origin, false, 10_000)))
  t.pass('all three deny it after the deny edit')
  const versions = gateways.map((gw) => gw.store.liveEntries?.get('default')?.deny.map((e) => e.value))
  t.same(versions, [[origin], [origin], [origin]], 'the same live entries everywhere')
})
