import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('one JSON line per request with stable fields and no secrets', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const secrets = { authorization: 'Bearer super-secret-token', cookie: 'laravel_session=secret-cookie' }
  await send(`${gw.url}/api/a?token=1`, { headers: { origin: 'https://app.example.com', ...secrets } })
  await send(`${gw.url}/api/b`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PUT', ...secrets } })
  await send(`${gw.url}/api/c`, { headers: { origin: 'https://evil.example', ...secrets } })

  const lines = gw.logs.filter((l) => l.msg === 'request')
  t.equal(lines.length, 3, 'one line per request')
  t.match(lines[0], { route: '/', method: 'GET', path: '/api/a', origin: 'https://app.example.com', kind: 'actual', decision: 'allowed', reason: 'origin_allowed', rule: 'https://app.example.com', status: 200, durationMs: Number })
  t.match(lines[1], { kind: 'preflight', decision: 'allowed', status: 204 })
  t.match(lines[2], { decision: 'denied', reason: 'origin_not_allowed', status: 403 })
  const all = JSON.stringify(gw.logs)
  t.notMatch(all, /super-secret-token|secret-cookie/, 'no Authorization or Cookie values in any line')
})
