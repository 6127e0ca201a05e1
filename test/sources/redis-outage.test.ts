// Redis down, hung, restarted empty, flushed: the last good whitelist keeps being served
// (never fail open, never drop to empty because of an error), the state says stale since
// when, and after a reconnect the source resyncs in full and resubscribes.
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { startUpstream } from '../helpers/upstream.js'
import { explainOrigin, startRedisGateway, uniquePrefix, waitFor, waitForRedisLoaded, waitForVerdict } from '../helpers/redis-gateway.js'

// With REDIS_URL the server is not ours: we will not kill, pause or flush it.
const external = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? 'needs a redis-server of its own (REDIS_URL is set)' : false

interface Readyz { status: string, sources: { redis: { state: string, staleSince: string | null, connected: boolean, lastError: string | null } } }

async function readyz (adminUrl: string): Promise<{ status: number, body: Readyz }> {
  const res = await fetch(`${adminUrl}/readyz`)
  return { status: res.status, body: await res.json() as Readyz }
}

async function preflight (url: string, origin: string): Promise<number> {
  const res = await fetch(`${url}/api`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'PUT' } })
  await res.arrayBuffer()
  return res.status
}

async function metric (adminUrl: string, name: string): Promise<string> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text()
  return text.split('\n').filter((l) => l.startsWith(name)).join('\n')
}

t.test('kill -9 mid-run: the last good list is served, /readyz says stale since when; restart empty, refill, edits propagate again', { skip: external }, async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const prefix = uniquePrefix()
  const redisOrigin = 'https://live.example.org'
  await redis.client.sadd(`${prefix}policy:default:origins`, redisOrigin)
  // A file origin denied from Redis: if an outage dropped the Redis list, it would open up.
  await redis.client.sadd(`${prefix}policy:default:deny`, 'https://app.example.com')
  const gw = await startRedisGateway(redis, { routes: [{ path: '/', upstream: upstream.url }], redisOptions: { keyPrefix: prefix, pollIntervalMs: 200, reconnectMaxDelayMs: 200 } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  t.equal(await preflight(gw.url, redisOrigin), 204)
  t.equal(await preflight(gw.url, 'https://app.example.com'), 403)

  const killedAt = Date.now()
  await redis.kill9()
  await waitFor(async () => (await readyz(gw.adminUrl)).body.sources.redis.state === 'stale', 3000, 'the source to be stale')
  const r = await readyz(gw.adminUrl)
  t.equal(r.status, 200, 'still ready: Redis is not required')
  t.equal(r.body.sources.redis.connected, false)
  t.ok(r.body.sources.redis.staleSince !== null && Date.parse(r.body.sources.redis.staleSince) >= killedAt - 5, `stale since ${r.body.sources.redis.staleSince}`)
  t.match(await metric(gw.adminUrl, 'corsgate_redis_connected'), /corsgate_redis_connected 0/)

  // Several poll intervals pass while Redis is down; requests are still answered from the last good list.
  const down = Date.now()
  const seen = { allowed: 0, denied: 0, forwarded: 0, rounds: 0 }
  while (Date.now() - down < 700) {
    seen.rounds++
    if (await preflight(gw.url, redisOrigin) === 204) seen.allowed++
    if (await preflight(gw.url, 'https://app.example.com') === 403) seen.denied++
    const res = await fetch(`${gw.url}/api/data`, { headers: { origin: redisOrigin } })
    if (res.status === 200 && res.headers.get('access-control-allow-origin') === redisOrigin) seen.forwarded++
    await res.arrayBuffer()
  }
  t.equal(seen.allowed, seen.rounds, 'an allowed Redis origin stays allowed')
  t.equal(seen.denied, seen.rounds, 'a denied origin stays denied (never fail open)')
  t.equal(seen.forwarded, seen.rounds, `actual requests are forwarded without waiting for Redis (${seen.rounds} rounds)`)

  await redis.restart()
  // Restarted empty: the resync after reconnecting is a real change (Redis entries gone, file origins back).
  await waitForVerdict(gw, redisOrigin, false, 5000)
  await waitForVerdict(gw, 'https://app.example.com', true, 5000)
  await waitFor(async () => (await readyz(gw.adminUrl)).body.sources.redis.state === 'fresh', 3000, 'the source to be fresh')
  t.match(await metric(gw.adminUrl, 'corsgate_redis_connected'), /corsgate_redis_connected 1/)
  await waitForRedisLoaded(gw)

  // Refilled, and announced on the channel: the subscription was made again after the restart.
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://refill.example.org')
  await redis.client.publish(`${prefix}reload`, 'default')
  await waitForVerdict(gw, 'https://refill.example.org', true, 2000)
  t.pass('an edit after the restart propagates')
})

t.test('a hung Redis: reads time out, the last good list stays, reload errors are counted', { skip: external }, async (t) => {
  const redis = await startRedis()
  t.teardown(async () => { redis.resume(); await redis.close() })
  const prefix = uniquePrefix()
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://live.example.org')
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix, pollIntervalMs: 150, commandTimeoutMs: 200 } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)

  redis.pause()
  await waitFor(async () => /result="error"/.test(await metric(gw.adminUrl, 'corsgate_policy_reloads_total')), 3000, 'a reload error')
  const r = await readyz(gw.adminUrl)
  t.equal(r.body.sources.redis.state, 'stale')
  t.match(r.body.sources.redis.lastError, /timed out/i)
  t.equal((await explainOrigin(gw, 'https://live.example.org')).allowed, true, 'the last good list is in force')
  // Redis is stopped (SIGSTOP) and stays stopped until resume() below: a request that waited
  // for Redis could not be answered now. An answer arriving at all proves none waits.
  t.equal(await preflight(gw.url, 'https://live.example.org'), 204, 'a preflight is answered while Redis is stopped')
  t.equal(await preflight(gw.url, 'https://evil.example.org'), 403, 'and a denial too (never fail open)')
  t.equal((await readyz(gw.adminUrl)).body.sources.redis.state, 'stale', 'Redis was still stopped when the answers came')

  redis.resume()
  await waitFor(async () => (await readyz(gw.adminUrl)).body.sources.redis.state === 'fresh', 3000, 'the source to be fresh again')
  t.pass('fresh again once Redis answers')
})

t.test('FLUSHALL is a real change: Redis entries go, file origins remain', { skip: external }, async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://live.example.org')
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  t.equal((await explainOrigin(gw, 'https://live.example.org')).allowed, true)

  await redis.client.flushall()
  await redis.client.publish(`${prefix}reload`, '*')
  await waitForVerdict(gw, 'https://live.example.org', false, 2000)
  t.equal((await explainOrigin(gw, 'https://app.example.com')).allowed, true, 'the file origin remains')
  const policies = await (await fetch(`${gw.adminUrl}/policies`)).json() as { sources: { redis: { state: string } } }
  t.equal(policies.sources.redis.state, 'fresh', 'an empty read is not an error')
})

t.test('DEL of a policy key is a real change too; a failed read is not (README "Live whitelists (Redis)" "Outages")', { skip: external }, async (t) => {
  const redis = await startRedis()
  t.teardown(async () => { redis.resume(); await redis.close() })
  const prefix = uniquePrefix()
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://live.example.org', 'https://other.example.org')
  const gw = await startRedisGateway(redis, { redisOptions: { keyPrefix: prefix, pollIntervalMs: 150, commandTimeoutMs: 200 } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)

  // An error never empties the list: Redis stopped, the next poll fails.
  redis.pause()
  await waitFor(async () => /result="error"/.test(await metric(gw.adminUrl, 'corsgate_policy_reloads_total')), 5000, 'a reload error')
  t.equal((await explainOrigin(gw, 'https://live.example.org')).allowed, true, 'after a failed read the Redis entries stay')
  redis.resume()
  await waitFor(async () => (await readyz(gw.adminUrl)).body.sources.redis.state === 'fresh', 5000, 'the source to be fresh again')

  // A successful read of a deleted key is what ops chose.
  await redis.client.del(`${prefix}policy:default:origins`)
  await redis.client.publish(`${prefix}reload`, 'default')
  await waitForVerdict(gw, 'https://live.example.org', false, 5000)
  t.equal((await explainOrigin(gw, 'https://other.example.org')).allowed, false, 'every entry of the deleted key goes')
  t.equal((await explainOrigin(gw, 'https://app.example.com')).allowed, true, 'the file origin remains')
  t.equal((await readyz(gw.adminUrl)).body.sources.redis.state, 'fresh', 'a deleted key is not an error')
})
