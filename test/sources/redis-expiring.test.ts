// Expiring origins (ZSET, score = expiry in Unix ms) stop matching on time without any edit,
// publish or poll; `/policies` shows the expiry, and drops the entry once it has passed.
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { explainOrigin, startRedisGateway, uniquePrefix, waitFor, waitForRedisLoaded } from '../helpers/redis-gateway.js'

interface PolicyEntry { pattern: string, source: string, expiresAt?: string, expired?: boolean }
type Policies = { policies: Record<string, { origins: PolicyEntry[] }> }

t.test('an expiring origin matches until its expiry, then stops, on time', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const ttl = 1500
  const expiresAt = Date.now() + ttl
  const origin = 'https://pr-17.preview.example.org'
  await redis.client.zadd(`${prefix}policy:default:origins:expiring`, expiresAt, origin)
  // Already expired (the CLI prunes those; the gateway ignores them).
  await redis.client.zadd(`${prefix}policy:default:origins:expiring`, Date.now() - 1000, 'https://pr-1.preview.example.org')
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)

  const v = await explainOrigin(gw, origin)
  t.equal(v.allowed, true, 'allowed before its expiry')
  t.equal(v.ruleSource, 'redis-expiring')
  t.equal((await explainOrigin(gw, 'https://pr-1.preview.example.org')).allowed, false, 'an already-expired member is ignored')
  const before = await (await fetch(`${gw.adminUrl}/policies`)).json() as Policies
  const entry = before.policies.default?.origins.find((o) => o.pattern === origin)
  t.same(entry, { pattern: origin, source: 'redis-expiring', expiresAt: new Date(expiresAt).toISOString(), expired: false }, '/policies shows source and expiry')

  await waitFor(async () => !(await explainOrigin(gw, origin)).allowed, ttl + 1000, 'the expiry')
  const late = Date.now() - expiresAt
  t.ok(late >= 0, 'not before its expiry')
  t.ok(late < 500, `stopped matching ${late} ms after its expiry`)

  // The expiry timer refreshes the view: the entry leaves /policies without any Redis edit.
  await waitFor(async () => {
    const after = await (await fetch(`${gw.adminUrl}/policies`)).json() as Policies
    return after.policies.default?.origins.every((o) => o.pattern !== origin) === true
  }, 1000, '/policies to drop the expired entry')
  t.equal(await redis.client.zcard(`${prefix}policy:default:origins:expiring`), 2, 'the gateway does not prune Redis (the CLI does)')
})

t.test('an expiring origin also leaves /policies on time while Redis is down', { skip: process.env.REDIS_URL ? 'needs a redis-server it can kill' : false }, async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const expiresAt = Date.now() + 1500
  const origin = 'https://pr-18.preview.example.org'
  await redis.client.zadd(`${prefix}policy:default:origins:expiring`, expiresAt, origin)
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://kept.example.org')
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  t.equal((await explainOrigin(gw, origin)).allowed, true)
  await redis.kill9()

  await waitFor(async () => {
    const after = await (await fetch(`${gw.adminUrl}/policies`)).json() as Policies
    return after.policies.default?.origins.every((o) => o.pattern !== origin) === true
  }, 3000, '/policies to drop the expired entry')
  t.ok(Date.now() >= expiresAt, 'not before its expiry')
  t.equal((await explainOrigin(gw, origin)).allowed, false, 'no longer allowed')
  t.equal((await explainOrigin(gw, 'https://kept.example.org')).allowed, true, 'the rest of the last good list stays')
})
