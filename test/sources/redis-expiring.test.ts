// Expiring origins (ZSET, score = expiry in Unix ms) stop matching at their expiry without any
// edit, publish or poll; `/policies` shows the expiry, and drops the entry once it has passed.
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { explainOrigin, startRedisGateway, uniquePrefix, waitFor, waitForRedisLoaded } from '../helpers/redis-gateway.js'

interface PolicyEntry { pattern: string, source: string, expiresAt?: string, expired?: boolean }
type Policies = { policies: Record<string, { origins: PolicyEntry[] }> }

t.test('an expiring origin matches until its expiry, then stops, without any edit', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const expiringKey = `${prefix}policy:default:origins:expiring`
  const origin = 'https://pr-17.preview.example.org'
  // Already expired (the CLI prunes those; the gateway ignores them).
  await redis.client.zadd(expiringKey, Date.now() - 1000, 'https://pr-1.preview.example.org')
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  t.equal((await explainOrigin(gw, 'https://pr-1.preview.example.org')).allowed, false, 'an already-expired member is ignored')

  // Written once the gateway runs, so a slow start cannot use up the entry's lifetime.
  const expiresAt = Date.now() + 3000
  await redis.client.zadd(expiringKey, expiresAt, origin)
  await redis.client.publish(`${prefix}reload`, 'default')
  let verdict = await explainOrigin(gw, origin)
  await waitFor(async () => (verdict = await explainOrigin(gw, origin)).allowed, 5000, 'the expiring entry to load')
  t.pass('allowed before its expiry (the matcher checks the expiry on every request)')
  t.equal(verdict.ruleSource, 'redis-expiring')
  const askedAt = Date.now()
  const before = await (await fetch(`${gw.adminUrl}/policies`)).json() as Policies
  const entry = before.policies.default?.origins.find((o) => o.pattern === origin)
  t.match(entry, { pattern: origin, source: 'redis-expiring', expiresAt: new Date(expiresAt).toISOString() }, '/policies shows source and expiry')
  if (askedAt < expiresAt) t.equal(entry?.expired, false, 'not marked expired before its expiry')

  // Order, not speed: every answer given before the expiry allows it, and it is refused after.
  // The poll's bound only keeps a broken build from hanging the suite.
  const answers: Array<{ receivedAt: number, allowed: boolean }> = []
  await waitFor(async () => {
    const { allowed } = await explainOrigin(gw, origin)
    answers.push({ receivedAt: Date.now(), allowed })
    return !allowed
  }, 30_000, 'the expiry')
  t.ok(answers.every((a) => a.allowed || a.receivedAt >= expiresAt), 'never refused before its expiry')
  t.equal(answers.at(-1)?.allowed, false, 'refused after its expiry')

  // The expiry timer refreshes the view: the entry leaves /policies without any Redis edit.
  await waitFor(async () => {
    const after = await (await fetch(`${gw.adminUrl}/policies`)).json() as Policies
    return after.policies.default?.origins.every((o) => o.pattern !== origin) === true
  }, 30_000, '/policies to drop the expired entry')
  t.equal(await redis.client.zcard(expiringKey), 2, 'the gateway does not prune Redis (the CLI does)')
})

t.test('an expiring origin also leaves /policies at its expiry while Redis is down', { skip: process.env.REDIS_URL ? 'needs a redis-server it can kill' : false }, async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const origin = 'https://pr-18.preview.example.org'
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://kept.example.org')
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  // Written once the gateway runs, so a slow start cannot use up the entry's lifetime.
  const expiresAt = Date.now() + 3000
  await redis.client.zadd(`${prefix}policy:default:origins:expiring`, expiresAt, origin)
  await redis.client.publish(`${prefix}reload`, 'default')
  await waitFor(async () => (await explainOrigin(gw, origin)).allowed, 5000, 'the expiring entry to load')
  t.pass('allowed before its expiry')
  await redis.kill9()

  await waitFor(async () => {
    const after = await (await fetch(`${gw.adminUrl}/policies`)).json() as Policies
    return after.policies.default?.origins.every((o) => o.pattern !== origin) === true
  }, 30_000, '/policies to drop the expired entry')
  t.ok(Date.now() >= expiresAt, 'not before its expiry')
  t.equal((await explainOrigin(gw, origin)).allowed, false, 'no longer allowed')
  t.equal((await explainOrigin(gw, 'https://kept.example.org')).allowed, true, 'the rest of the last good list stays')
})
