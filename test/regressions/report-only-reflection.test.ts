// report-only serves everything as if allowed, but never reflects an Origin that no browser
// would send (a list, non-ASCII): Node would re-encode it and the echo would match nothing.
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('report-only never reflects an Origin that is no serialized origin', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'], mode: 'report-only' } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const listed = await send(`${gw.url}/x`, { headers: { origin: 'https://evil.example, https://app.example.com' } })
  t.equal(listed.status, 200, 'served, as report-only promises')
  t.equal(listed.one('access-control-allow-origin'), undefined, 'but a list is not echoed')
  const canonical = await send(`${gw.url}/x`, { headers: { origin: 'https://evil.example' } })
  t.equal(canonical.one('access-control-allow-origin'), 'https://evil.example', 'a well-formed origin is')
})
