// A `*` policy answers `*` to a same-origin request too: its responses carry no Vary: Origin,
// so an echoed origin could be served from a shared cache to other origins.
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('same-origin on a * policy gets *', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['*'], credentials: false } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/x`, { headers: { origin: gw.url } })
  t.equal(res.status, 200)
  t.equal(res.one('access-control-allow-origin'), '*')
  t.equal(res.one('vary'), undefined)
})
