// `GET /observed` and `POST /diff` on the admin port (SPEC.md "Observed origins"), here without
// Redis (the replica's own view): the JSON shape exactly, the outcome filter, bad input, the
// drop metric without an origin label, and `observe.enabled: false`.
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { waitFor } from '../helpers/redis-gateway.js'
import { startUpstream } from '../helpers/upstream.js'

const APP = 'https://app.example.com'
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

t.test('GET /observed: the shape of SPEC.md, sorted by requests', async (t) => {
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const gw = await startTestGateway({
    policies: { default: { origins: [APP], deny: ['https://bad.example.com'] }, api: { origins: [APP], mode: 'report-only' } },
    routes: [{ path: '/api/', upstream: upstream.url, policy: 'api' }, { path: '/', upstream: upstream.url }],
    observe: { maxOrigins: 3 }
  })
  t.teardown(gw.close)
  const get = async (path: string, headers: Record<string, string>, method = 'GET') => await send(`${gw.url}${path}`, { method, headers })
  for (let i = 0; i < 3; i++) await get('/x', { origin: APP })
  await get('/x', { origin: APP, 'access-control-request-method': 'PUT' }, 'OPTIONS')
  await get('/x', { origin: APP, 'access-control-request-method': 'PURGE' }, 'OPTIONS') // method_not_allowed
  await get('/x', { origin: 'https://bad.example.com' })
  await get('/x', { origin: 'https://bad.example.com' })
  await get('/x', {})
  await get('/x', { origin: 'https://a.example.com, https://b.example.com' })
  for (let i = 0; i < 4; i++) await get('/x', { origin: `https://spray-${i}.example.net` }) // 1 row left, then other
  await get('/api/v', { origin: 'https://stranger.example.org' })
  // A forwarded request is recorded when its response closes: wait for the last ones.
  const counted = (policy: string): number => [...(gw.observed!.observer.table(policy)?.allRows() ?? [])].reduce((n, r) => n + r.requests, 0)
  await waitFor(() => counted('default') === 13 && counted('api') === 1, 10_000, 'every request recorded')

  const res = await send(`${gw.adminUrl}/observed?policy=default&since=24h`)
  t.equal(res.status, 200)
  t.equal(res.one('x-corsgate-observed-source'), 'local', 'no Redis: this replica\'s view')
  const body = res.json() as Record<string, any>
  for (const o of body.origins) {
    t.match(o.firstSeen, ISO)
    t.match(o.lastSeen, ISO)
    delete o.firstSeen
    delete o.lastSeen
  }
  t.same(body, {
    policy: 'default',
    since: '24h',
    origins: [
      { origin: APP, requests: 5, outcomes: { allowed: 4, denied: 1, would_deny: 0, same_origin: 0 }, reasons: { origin_allowed: 4, method_not_allowed: 1 }, routes: ['/'] },
      { origin: 'https://bad.example.com', requests: 2, outcomes: { allowed: 0, denied: 2, would_deny: 0, same_origin: 0 }, reasons: { denylisted: 2 }, routes: ['/'] },
      { origin: null, requests: 1, outcomes: { allowed: 1, denied: 0, would_deny: 0, same_origin: 0 }, reasons: { no_origin: 1 }, routes: ['/'] },
      { origin: 'https://spray-0.example.net', requests: 1, outcomes: { allowed: 0, denied: 1, would_deny: 0, same_origin: 0 }, reasons: { origin_not_allowed: 1 }, routes: ['/'] }
    ],
    other: 3,
    invalid: 1
  })
  t.equal(Object.keys(body).join(','), 'policy,since,origins,other,invalid')

  const denied = (await send(`${gw.adminUrl}/observed?policy=default&outcome=denied`)).json() as Record<string, any>
  t.equal(denied.since, '24h', 'since defaults to 24h')
  t.same(denied.origins.map((o: Record<string, unknown>) => o.origin), ['https://bad.example.com', APP, 'https://spray-0.example.net'], 'only origins with denials, most denials first')
  t.equal(denied.other, 3)
  const api = (await send(`${gw.adminUrl}/observed?policy=api&outcome=would_deny`)).json() as Record<string, any>
  t.same(api.origins.map((o: Record<string, unknown>) => [o.origin, o.routes]), [['https://stranger.example.org', ['/api/']]])

  const bad = async (query: string, status: number, message: RegExp): Promise<void> => {
    const r = await send(`${gw.adminUrl}/observed${query}`)
    t.equal(r.status, status, query)
    t.match(r.json(), { message }, query)
  }
  await bad('', 400, /policy is required/)
  await bad('?policy=nope', 404, /no policy named "nope"/)
  await bad('?policy=default&since=yesterday', 400, /since must be a duration/)
  await bad('?policy=default&outcome=maybe', 400, /outcome must be one of allowed, denied, would_deny, same_origin/)

  const metrics = (await send(`${gw.adminUrl}/metrics`)).body
  t.match(metrics, /corsgate_observed_dropped_total\{policy="default",row="other"\} 3/)
  t.match(metrics, /corsgate_observed_dropped_total\{policy="default",row="invalid"\} 1/)
  t.notMatch(metrics, /spray-|example\.com/, 'no origin in any label')
})

t.test('POST /diff: a candidate policy against the observed traffic', async (t) => {
  const gw = await startTestGateway({ policies: { default: { origins: [APP, 'https://*.example.com'] } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] })
  t.teardown(gw.close)
  for (const origin of [APP, APP, 'https://shop.example.com', 'https://x.example.org']) await send(`${gw.url}/x`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } })
  const post = async (body: unknown) => await fetch(`${gw.adminUrl}/diff`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const res = await post({ policies: { default: { origins: [APP, 'https://x.example.org'] } }, since: '1h' })
  t.equal(res.status, 200)
  const report = await res.json() as Record<string, any>
  t.same(report.flips.map((f: Record<string, unknown>) => [f.origin, f.requests, f.from, f.to, f.breaking]), [
    ['https://shop.example.com', 1, 'allowed', 'denied', true],
    ['https://x.example.org', 1, 'denied', 'allowed', false]
  ])
  t.same(report.breaking, { origins: 1, requests: 1 })
  t.equal(report.since, '1h')
  const invalid = await post({ policies: { default: { origins: ['https://*.com'] } } })
  t.equal(invalid.status, 400)
  t.match(await invalid.json(), { message: /policies\.default\.origins\[0\].*public suffix/ })
  const unknown = await post({ policies: { default: { colour: 'blue' } } })
  t.equal(unknown.status, 400)
  t.match(await unknown.json(), { message: /policies\.default/ })
})

t.test('observe.enabled: false: nothing counted, the endpoints say so', async (t) => {
  const gw = await startTestGateway({ policies: { default: { origins: [APP] } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], observe: { enabled: false } })
  t.teardown(gw.close)
  t.equal(gw.observed, undefined)
  await send(`${gw.url}/x`, { headers: { origin: APP } })
  const res = await send(`${gw.adminUrl}/observed?policy=default`)
  t.equal(res.status, 404)
  t.match(res.json(), { error: 'observe_disabled' })
})
