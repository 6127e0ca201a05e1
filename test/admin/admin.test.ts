import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { deadPort, startUpstream } from '../helpers/upstream.js'

t.test('admin endpoints live on their own port, never on the public one', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com', 'https://*.example.com'], deny: ['https://old.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  t.not(gw.url, gw.adminUrl)

  t.same((await send(`${gw.adminUrl}/healthz`)).json(), { status: 'ok' })
  const ready = await send(`${gw.adminUrl}/readyz`)
  t.equal(ready.status, 200)
  t.match(ready.json(), { status: 'ready', config: 'loaded' })

  const policies = (await send(`${gw.adminUrl}/policies`)).json() as Record<string, any>
  t.match(policies.policies.default, { mode: 'enforce', credentials: true })
  t.same(policies.policies.default.origins.map((o: { pattern: string, source: string }) => `${o.source}:${o.pattern}`).sort(), ['file:https://*.example.com', 'file:https://app.example.com'])
  t.same(policies.policies.default.deny, [{ pattern: 'https://old.example.com', source: 'file' }])
  t.match(policies.lastReload, { source: 'file', result: 'ok', at: String })

  const explain = (await send(`${gw.adminUrl}/explain?origin=${encodeURIComponent('https://x.example.com')}&path=/api&method=PUT&header=content-type`)).json()
  t.match(explain, { allowed: true, kind: 'preflight', reason: 'origin_allowed', rule: 'https://*.example.com', ruleSource: 'file', route: '/', status: 204, headers: { 'access-control-allow-origin': 'https://x.example.com' } })
  const denied = (await send(`${gw.adminUrl}/explain?origin=${encodeURIComponent('https://old.example.com')}`)).json()
  t.match(denied, { allowed: false, decision: 'denied', reason: 'denylisted', status: 403 })

  for (const path of ['/healthz', '/metrics', '/policies']) {
    const res = await send(`${gw.url}${path}`)
    t.equal(res.status, 200, `${path} on the public port is just proxied`)
    t.match(res.json(), { url: path }, 'the upstream answered it, not the admin app')
  }
})

t.test('metrics: requests by route, kind and decision; duration; upstream errors; reloads; no origin label', async (t) => {
  const upstream = await startUpstream()
  const dead = await deadPort()
  const gw = await startTestGateway({
    policies: { default: { origins: ['https://app.example.com'] } },
    routes: [{ path: '/', upstream: upstream.url }, { path: '/down', upstream: `http://127.0.0.1:${dead}` }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  await send(`${gw.url}/a`, { headers: { origin: 'https://app.example.com' } })
  await send(`${gw.url}/a`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PUT' } })
  await send(`${gw.url}/a`, { headers: { origin: 'https://unique-origin-123.example' } })
  await send(`${gw.url}/a`)
  await send(`${gw.url}/down/x`, { headers: { origin: 'https://app.example.com' } })

  const text = (await send(`${gw.adminUrl}/metrics`)).body
  t.match(text, /corsgate_requests_total\{route="\/",kind="actual",decision="allowed",reason="origin_allowed"\} 1/)
  t.match(text, /corsgate_requests_total\{route="\/",kind="preflight",decision="allowed",reason="origin_allowed"\} 1/)
  t.match(text, /corsgate_requests_total\{route="\/",kind="actual",decision="denied",reason="origin_not_allowed"\} 1/)
  t.match(text, /corsgate_requests_total\{route="\/",kind="actual",decision="no_origin",reason="no_origin"\} 1/)
  t.match(text, /corsgate_request_duration_seconds_bucket\{le="0.005",route="\/",kind="preflight"\} \d/)
  t.match(text, /corsgate_upstream_errors_total\{route="\/down",kind="unavailable"\} 1/)
  t.match(text, /corsgate_policy_reloads_total\{source="file",result="ok"\} 1/)
  t.match(text, /corsgate_policy_last_reload_timestamp_seconds \d+/)
  t.match(text, /corsgate_policy_origins\{policy="default",source="file"\} 1/)
  t.match(text, /corsgate_process_resident_memory_bytes \d+/, 'default process metrics')
  t.notMatch(text, /unique-origin-123/, 'the origin is never a label')
})
