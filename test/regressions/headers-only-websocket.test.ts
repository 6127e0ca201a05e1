// headers-only only withholds CORS headers, which browsers ignore for websockets: a denied
// upgrade must still be refused, or the mode would open cross-site websocket hijacking.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'

t.test('a denied origin cannot open a websocket on a headers-only policy', async (t) => {
  let upgrades = 0
  const upstream = createServer((_req, res) => res.end('http'))
  upstream.on('upgrade', (_req, socket) => { upgrades++; socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n') })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  const gw = await startTestGateway({
    policies: { default: { origins: ['https://app.example.com'], mode: 'headers-only' } },
    routes: [{ path: '/', upstream: url, websocket: true }]
  })
  t.teardown(async () => { await gw.close(); upstream.closeAllConnections(); upstream.close() })

  const upgradeHeaders = (origin: string): Record<string, string> => ({
    origin, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ=='
  })
  const denied = await send(`${gw.url}/ws`, { headers: upgradeHeaders('https://evil.example') })
  t.equal(denied.status, 403)
  t.same(denied.json(), { error: 'cors_denied', reason: 'origin_not_allowed' })
  t.equal(upgrades, 0, 'the upstream never saw the upgrade')

  const plain = await send(`${gw.url}/page`, { headers: { origin: 'https://evil.example' } })
  t.equal(plain.status, 200, 'ordinary requests are still forwarded in headers-only mode')
  t.equal(plain.one('access-control-allow-origin'), undefined)
})
