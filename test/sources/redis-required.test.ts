// `redis.required: true` holds /readyz at 503 until the first successful load; the gateway
// serves its file policies meanwhile (Redis is never on the request path).
import t from 'tap'
import { freePort, startRedis } from '../helpers/redis-server.js'
import { startTestGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/redis-gateway.js'

const external = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? 'needs to start redis-server itself (REDIS_URL is set)' : false

t.test('redis.required holds /readyz at 503 until the first load', { skip: external }, async (t) => {
  const port = await freePort()
  const gw = await startTestGateway({
    policies: { default: { origins: ['https://app.example.com'] } },
    routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }],
    redis: { url: `redis://127.0.0.1:${port}/0`, required: true, pollIntervalMs: 100, reconnectMaxDelayMs: 100, keyPrefix: 'req:' }
  })
  t.teardown(gw.close)

  const first = await fetch(`${gw.adminUrl}/readyz`)
  const body = await first.json() as { status: string, sources: { redis: { loaded: boolean, required: boolean, state: string } } }
  t.equal(first.status, 503, 'not ready while Redis has never loaded')
  t.match(body, { status: 'not_ready', sources: { redis: { loaded: false, required: true, state: 'stale' } } })
  const pre = await fetch(`${gw.url}/x`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } })
  t.equal(pre.status, 204, 'file policies are served meanwhile')

  // Now Redis appears on that port.
  const redis = await startRedis({ port })
  t.teardown(redis.close)
  await waitFor(async () => (await fetch(`${gw.adminUrl}/readyz`)).status === 200, 5000, 'readiness')
  const ready = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { sources: { redis: { loaded: boolean, state: string } } }
  t.match(ready, { sources: { redis: { loaded: true, state: 'fresh' } } })
})
