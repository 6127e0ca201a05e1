// A preflight corsgate cannot answer (400 bad path) still carries the allowed origin's CORS
// headers and the preflight Vary, like every response corsgate makes itself.
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('400 on a preflight with a dot-segment path', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/a/../b`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PUT' } })
  t.equal(res.status, 400)
  t.equal(res.one('access-control-allow-origin'), 'https://app.example.com')
  t.equal(res.one('vary'), 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers')
  const denied = await send(`${gw.url}/a/../b`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' } })
  t.equal(denied.one('access-control-allow-origin'), undefined, 'never for a refused origin')
  t.equal(upstream.seen.length, 0)
})
