// Bad data in Redis: invalid entries and wrong key types are skipped, logged with their key
// and value, and counted; the rest loads.
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { explainOrigin, startRedisGateway, uniquePrefix, waitFor, waitForRedisLoaded } from '../helpers/redis-gateway.js'

async function invalidCount (adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text()
  return Number(/^corsgate_policy_invalid_entries_total\{source="redis"\} (\d+)/m.exec(text)?.[1] ?? 0)
}

t.test('invalid entries are skipped, logged with key and value, counted; the rest loads', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const key = `${prefix}policy:default:origins`
  await redis.client.sadd(key, 'https://good.example.org', 'not an origin', 'https://*.com', 're:^(unclosed', 'https://x.example.org/path')
  await redis.client.sadd(`${prefix}policy:default:deny`, 'https://*.co.uk', 'https://bad.example.org')
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)

  t.equal((await explainOrigin(gw, 'https://good.example.org')).allowed, true, 'the good allow entry loaded')
  t.equal((await explainOrigin(gw, 'https://bad.example.org')).reason, 'denylisted', 'the good deny entry loaded')
  t.equal((await explainOrigin(gw, 'https://app.example.com')).allowed, true, 'file origins loaded')
  t.equal(await invalidCount(gw.adminUrl), 5, 'five invalid entries counted')
  const skipped = gw.logs.filter((l) => l.msg === 'skipped invalid origin entry')
  t.equal(skipped.length, 5)
  const line = skipped.find((l) => l.value === 'https://*.com')
  t.equal(line?.key, key, 'the log line names the key')
  t.match(line?.err, /public suffix/, 'and says why')
  t.ok(skipped.some((l) => l.value === 're:^(unclosed' && l.key === key), 'a regex that does not compile is refused')
  t.ok(skipped.some((l) => l.value === 'https://*.co.uk' && l.key === `${prefix}policy:default:deny`))

  const policies = await (await fetch(`${gw.adminUrl}/policies`)).json() as { sources: { redis: { invalidEntries: number } } }
  t.equal(policies.sources.redis.invalidEntries, 5, '/policies reports the count of the last load')
})

t.test('a key of the wrong type is reported like an invalid entry; the other keys load', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const gw = await startRedisGateway(redis, {
    policies: { default: { origins: ['https://app.example.com'] }, admin: { origins: [] } },
    redisOptions: { keyPrefix: prefix }
  })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  const before = await invalidCount(gw.adminUrl)

  // Someone SET a string where a SET belongs, and a SET where the ZSET belongs.
  await redis.client.set(`${prefix}policy:default:origins`, 'https://oops.example.org')
  await redis.client.sadd(`${prefix}policy:default:origins:expiring`, 'https://oops2.example.org')
  await redis.client.sadd(`${prefix}policy:default:deny`, 'https://evil.example.org')
  await redis.client.sadd(`${prefix}policy:admin:origins`, 'https://admin.example.org')
  await redis.client.publish(`${prefix}reload`, '*')
  await waitFor(async () => (await explainOrigin(gw, 'https://evil.example.org')).reason === 'denylisted', 2000, 'the deny entry')
  t.pass('the deny set of the same policy loaded')
  t.equal((await explainOrigin(gw, 'https://oops.example.org')).allowed, false, 'the string value is not taken as an origin')
  t.equal(await invalidCount(gw.adminUrl), before + 2, 'both wrong-type keys counted')
  const lines = gw.logs.filter((l) => l.msg === 'skipped invalid origin entry' && typeof l.err === 'string' && /WRONGTYPE/.test(l.err as string))
  t.same(lines.map((l) => [l.key, l.value]).sort(), [
    [`${prefix}policy:default:origins`, '(string)'],
    [`${prefix}policy:default:origins:expiring`, '(set)']
  ], 'logged with the key and what it holds')
  const policies = await (await fetch(`${gw.adminUrl}/policies`)).json() as { policies: Record<string, { origins: Array<{ pattern: string, source: string }> }> }
  t.ok(policies.policies.admin?.origins.some((o) => o.pattern === 'https://admin.example.org' && o.source === 'redis'), 'the other policy loaded')
})
