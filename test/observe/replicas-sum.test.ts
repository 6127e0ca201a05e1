// Three real gateway processes on one Redis: each counts its own requests and flushes them
// into the same hourly buckets, so Redis holds the exact sum, and `GET /observed` on any
// replica answers for all three. Stopping them (SIGTERM: a last flush) adds nothing twice.
import t from 'tap'
import { readObservedCounts } from '../../src/observe/observed-reader.js'
import { observedReport } from '../../src/observe/observed-report.js'
import { startGatewayProcess } from '../helpers/gateway-process.js'
import { send } from '../helpers/http.js'
import { startRedis } from '../helpers/redis-server.js'
import { uniquePrefix, waitFor } from '../helpers/redis-gateway.js'
import { startUpstream } from '../helpers/upstream.js'

const APP = 'https://app.example.com'
const EVIL = 'https://evil.example.org'

t.test('three gateway processes: counts add up exactly in Redis', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const prefix = uniquePrefix()
  const config = {
    redis: { url: redis.url, keyPrefix: prefix, pollIntervalMs: 60_000 },
    observe: { flushIntervalMs: 100 },
    policies: { default: { origins: [APP], deny: [EVIL] }, api: { origins: ['https://*.partner.example.net'], mode: 'report-only' } },
    routes: [{ path: '/api/', upstream: upstream.url, policy: 'api' }, { path: '/', upstream: upstream.url }]
  }
  const gateways = await Promise.all([1, 2, 3].map(async () => await startGatewayProcess(config)))
  t.teardown(async () => { for (const gw of gateways) await gw.stop() })

  // Each replica gets its own mix: actual requests, preflights, denials, no Origin.
  const plan: Array<Array<[number, string, Record<string, string>]>> = [
    [[5, '/x', { origin: APP }], [3, '/x', { origin: EVIL }], [2, '/x', {}]],
    [[7, '/x', { origin: APP }], [4, '/x', { origin: APP, 'access-control-request-method': 'PUT' }], [1, '/api/v', { origin: 'https://a.partner.example.net' }]],
    [[11, '/x', { origin: APP }], [6, '/api/v', { origin: 'https://stranger.example.org' }], [2, '/x', { origin: EVIL }]]
  ]
  await Promise.all(gateways.map(async (gw, i) => {
    for (const [n, path, headers] of plan[i]!) {
      for (let k = 0; k < n; k++) {
        const method = headers['access-control-request-method'] !== undefined ? 'OPTIONS' : 'GET'
        await send(`${gw.url}${path}`, { method, headers })
      }
    }
  }))

  const expected = {
    default: { [APP]: 27, [EVIL]: 5, '(none)': 2 },
    api: { 'https://stranger.example.org': 6, 'https://a.partner.example.net': 1 }
  }
  const sums = async (policy: string): Promise<Record<string, number>> => {
    const report = observedReport(policy, '1h', await readObservedCounts(redis.client, prefix, policy, 3_600_000, Date.now()))
    return Object.fromEntries(report.origins.map((o) => [o.origin ?? '(none)', o.requests]))
  }
  // Poll Redis itself until every replica's flush has landed.
  await waitFor(async () => JSON.stringify(await sums('default')) === JSON.stringify(expected.default) && JSON.stringify(await sums('api')) === JSON.stringify(expected.api), 60_000, 'the three replicas\' counts in Redis')
  t.same(await sums('default'), expected.default, 'default: the exact sum of three replicas')
  t.same(await sums('api'), expected.api, 'api: the exact sum')

  const body = (await send(`${gateways[0]!.adminUrl}/observed?policy=default&since=1h`)).json() as Record<string, any>
  t.equal(body.policy, 'default')
  t.same(body.origins.map((o: Record<string, unknown>) => [o.origin, o.requests]), [[APP, 27], [EVIL, 5], [null, 2]], 'GET /observed on one replica answers for all three, most requests first')
  t.same(body.origins[0].outcomes, { allowed: 27, denied: 0, would_deny: 0, same_origin: 0 })
  t.same(body.origins[1].reasons, { denylisted: 5 })
  const api = (await send(`${gateways[1]!.adminUrl}/observed?policy=api&since=1h&outcome=would_deny`)).json() as Record<string, any>
  t.same(api.origins.map((o: Record<string, unknown>) => o.origin), ['https://stranger.example.org'], 'outcome filter: report-only would-denials')

  for (const gw of gateways) t.equal(await gw.stop(), 0, 'SIGTERM: last flush, exit 0')
  t.same(await sums('default'), expected.default, 'nothing counted twice by the last flush')
  t.same(await sums('api'), expected.api)
  const keys = await redis.client.keys(`${prefix}observed:*`)
  t.ok(keys.length >= 2 && keys.length <= 4, `one hash per policy and hour (${keys.length})`)
  const ttl = await redis.client.pttl(keys[0]!)
  t.ok(ttl > 7 * 86_400_000 && ttl <= 7 * 86_400_000 + 3_600_000, 'TTL: the retention (7d) plus the hour')
})
