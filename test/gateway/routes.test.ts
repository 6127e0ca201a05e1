import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('longest path prefix wins, host routes before any-host routes, one policy per route', async (t) => {
  const api = await startUpstream((_q, res) => res.end('api'))
  const ws = await startUpstream((_q, res) => res.end('socket'))
  const admin = await startUpstream((_q, res) => res.end('admin-host'))
  const gw = await startTestGateway({
    policies: {
      default: { origins: ['https://app.example.com'] },
      public: { origins: ['*'], credentials: false, methods: ['GET'] },
      backoffice: { origins: ['https://backoffice.example.com'] }
    },
    routes: [
      { path: '/', upstream: api.url },
      { path: '/socket.io/', upstream: ws.url, websocket: true },
      { path: '/public', upstream: api.url, policy: 'public' },
      { path: '/', host: 'admin.example.com', upstream: admin.url, policy: 'backoffice' }
    ]
  })
  t.teardown(async () => { await gw.close(); await api.close(); await ws.close(); await admin.close() })
  const app = { origin: 'https://app.example.com' }

  t.equal((await send(`${gw.url}/socket.io/?EIO=4&transport=polling`, { headers: app })).body, 'socket')
  t.equal((await send(`${gw.url}/socket.iox`, { headers: app })).body, 'api', 'prefix boundaries are path segments')
  t.equal((await send(`${gw.url}/users`, { headers: app })).body, 'api')

  const pub = await send(`${gw.url}/public/prices`, { headers: { origin: 'https://anyone.example' } })
  t.equal(pub.status, 200)
  t.equal(pub.one('access-control-allow-origin'), '*', 'the /public route has its own policy')
  t.equal((await send(`${gw.url}/publicity`, { headers: { origin: 'https://anyone.example' } })).status, 403, '/publicity is not under /public')

  const other = await send(`${gw.url}/users`, { headers: { ...app, host: 'admin.example.com:8080' } })
  t.equal(other.status, 403, 'the admin host has the backoffice policy')
  const bo = await send(`${gw.url}/users`, { headers: { origin: 'https://backoffice.example.com', host: 'ADMIN.example.com' } })
  t.equal(bo.status, 200)
  t.equal(bo.body, 'admin-host', 'host match is case-insensitive and ignores the port')
})

t.test('report-only serves everything and logs would-be denials; headers-only forwards without CORS headers', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    policies: {
      default: { origins: ['https://app.example.com'], mode: 'report-only' },
      classic: { origins: ['https://app.example.com'], mode: 'headers-only' }
    },
    routes: [{ path: '/', upstream: upstream.url }, { path: '/classic', upstream: upstream.url, policy: 'classic' }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const report = await send(`${gw.url}/x`, { headers: { origin: 'https://evil.example' } })
  t.equal(report.status, 200)
  t.equal(report.one('access-control-allow-origin'), 'https://evil.example', 'served as if allowed')
  const pre = await send(`${gw.url}/x`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' } })
  t.equal(pre.status, 204)
  t.match(gw.logs.find((l) => l.msg === 'request' && l.origin === 'https://evil.example'), { decision: 'would_deny', reason: 'origin_not_allowed' })

  const classic = await send(`${gw.url}/classic/x`, { headers: { origin: 'https://evil.example' } })
  t.equal(classic.status, 200, 'forwarded')
  t.equal(classic.one('access-control-allow-origin'), undefined, 'but no CORS headers for a denied origin')
  t.equal(classic.one('vary'), 'Origin')
  const classicPre = await send(`${gw.url}/classic/x`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' } })
  t.equal(classicPre.one('access-control-allow-origin'), undefined)
  const good = await send(`${gw.url}/classic/x`, { headers: { origin: 'https://app.example.com' } })
  t.equal(good.one('access-control-allow-origin'), 'https://app.example.com')
  t.equal(upstream.seen.length, 3)
})
