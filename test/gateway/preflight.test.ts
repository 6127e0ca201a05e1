import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('an allowed preflight is answered by corsgate and never forwarded', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    policies: { default: { origins: ['https://app.example.com'], maxAge: 600 } },
    routes: [{ path: '/', upstream: upstream.url }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const res = await fetch(`${gw.url}/api/users`, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type,authorization' }
  })
  t.equal(res.status, 204)
  t.equal(res.headers.get('access-control-allow-origin'), 'https://app.example.com')
  t.equal(res.headers.get('access-control-allow-credentials'), 'true')
  t.equal(res.headers.get('access-control-allow-methods'), 'GET, HEAD, POST, PUT, PATCH, DELETE')
  t.match(res.headers.get('access-control-allow-headers'), /Content-Type/)
  t.equal(res.headers.get('access-control-max-age'), '600')
  t.equal(res.headers.get('content-length'), '0')
  t.equal(res.headers.get('vary'), 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers')
  t.equal(upstream.seen.length, 0, 'the upstream saw nothing')
})
