// A websocket upgrade goes upstream by the same rules as every HTTP request, and is refused
// with the same answer: a client's RFC 7239 `Forwarded` passed on upgrades without trustProxy
// (a false client address for the backend), and the upgrade 403 carried `Vary: Origin` only
// when the policy was not a `*` one, where every HTTP 403 carries it.
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import t from 'tap'
import WebSocket from 'ws'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'
import { startWsEcho } from '../helpers/ws-upstream.js'

const ORIGIN = 'https://app.example.com'

for (const trustProxy of [false, true]) {
  t.test(`Forwarded on an upgrade and on a GET, trustProxy ${String(trustProxy)}`, async (t) => {
    const ws = await startWsEcho()
    const http = await startUpstream()
    const gw = await startTestGateway({
      server: { trustProxy },
      policies: { default: { origins: [ORIGIN] } },
      routes: [{ path: '/ws', upstream: ws.url, websocket: true }, { path: '/', upstream: http.url }]
    })
    t.teardown(async () => { await gw.close(); await ws.close(); await http.close() })
    const client = new WebSocket(gw.url.replace('http', 'ws') + '/ws', { origin: ORIGIN, headers: { forwarded: 'for=6.6.6.6' } })
    await once(client, 'open')
    client.close()
    await send(`${gw.url}/x`, { headers: { origin: ORIGIN, forwarded: 'for=6.6.6.6' } })
    const expected = trustProxy ? 'for=6.6.6.6' : undefined
    t.equal(ws.upgrades[0]?.headers.forwarded, expected, 'upgrade')
    t.equal(http.seen[0]?.headers.forwarded, expected, 'GET: the same rule')
    t.equal(ws.upgrades[0]?.headers['x-forwarded-for'], http.seen[0]?.headers['x-forwarded-for'], 'the same X-Forwarded-For')
  })
}

t.test('a refused upgrade carries Vary: Origin like a refused request, whatever the policy', async (t) => {
  const ws = await startWsEcho()
  const gw = await startTestGateway({
    policies: { default: { origins: ['*'], credentials: false, deny: ['https://evil.example.org'] } },
    routes: [{ path: '/', upstream: ws.url, websocket: true }]
  })
  t.teardown(async () => { await gw.close(); await ws.close() })
  const client = new WebSocket(gw.url.replace('http', 'ws') + '/ws', { origin: 'https://evil.example.org' })
  client.on('error', () => {})
  const [, res] = await once(client, 'unexpected-response') as [unknown, IncomingMessage]
  res.resume()
  client.terminate()
  t.equal(res.statusCode, 403)
  t.equal(res.headers.vary, 'Origin', 'upgrade 403')
  const http = await send(`${gw.url}/x`, { headers: { origin: 'https://evil.example.org' } })
  t.equal(http.status, 403)
  t.equal(http.one('vary'), 'Origin', 'HTTP 403: the same')
  t.equal(ws.upgrades.length, 0)
})
