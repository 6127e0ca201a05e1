// Regression: a `*` in Redis on a credentials policy was logged as
// `policies.default.origins (redis)`, without its Redis key, because the pattern cache of the
// sliced build dropped `where`. The log line must name the key and the value; the rest loads.
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { explainOrigin, startRedisGateway, uniquePrefix, waitFor, waitForRedisLoaded } from '../helpers/redis-gateway.js'

const refusal = /"\*" cannot be used with credentials: true/

t.test('a "*" on a credentials policy is skipped and logged with its Redis key; the rest loads', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const origins = `${prefix}policy:default:origins`
  const expiring = `${prefix}policy:default:origins:expiring`
  await redis.client.sadd(origins, '*', 'https://good.example.org')
  const gw = await startRedisGateway(redis, { policies: { default: { origins: ['https://app.example.com'], credentials: true } }, redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)

  const refused = (key: string) => gw.logs.filter((l) => l.msg === 'skipped invalid origin entry' && l.value === '*' && typeof l.err === 'string' && refusal.test(l.err) && l.key === key)
  t.ok(refused(origins).length > 0, 'the log line names the Redis key and the value "*"')
  t.notOk(gw.logs.some((l) => l.msg === 'skipped invalid origin entry' && l.value === '*' && String(l.key).startsWith('policies.')), 'never the file position')
  t.equal((await explainOrigin(gw, 'https://good.example.org')).allowed, true, 'the other Redis entry loaded')
  t.equal((await explainOrigin(gw, 'https://app.example.com')).allowed, true, 'the file origin loaded')
  t.equal((await explainOrigin(gw, 'https://evil.example.org')).allowed, false, 'the "*" is not in force (never fail open)')

  // A reload reuses the cached entry: it must still carry its key. An expiring "*" names its own key.
  const before = refused(origins).length
  await redis.client.zadd(expiring, Date.now() + 3_600_000, '*')
  await redis.client.sadd(origins, 'https://second.example.org')
  await redis.client.publish(`${prefix}reload`, 'default')
  await waitFor(() => refused(expiring).length > 0, 5000, 'the expiring "*" to be refused')
  t.pass('the expiring "*" is logged with the expiring key')
  await waitFor(async () => (await explainOrigin(gw, 'https://second.example.org')).allowed, 5000, 'the reload')
  t.ok(refused(origins).length > before, 'after a reload the cached "*" still names its key')
  t.equal((await explainOrigin(gw, 'https://evil.example.org')).allowed, false, 'still not in force')
})
