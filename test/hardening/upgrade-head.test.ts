// Websocket upgrades bypass Fastify's hooks (upgrade.ts answers Node's 'upgrade' event), so
// the request-head checks every HTTP request gets must hold there too: a second Host, too many
// header lines, an ambiguous path, an abusive Origin.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { WebSocketServer } from 'ws'
import { startTestGateway } from '../helpers/gateway.js'
import { headerValues, openSocket, readUntilClose, sendRaw } from '../helpers/raw-http.js'

const ORIGIN = 'https://app.example.com'

t.test('upgrade requests get the same head checks as HTTP requests', async (t) => {
  const http = createServer((_req, res) => { res.statusCode = 426; res.end() })
  const wss = new WebSocketServer({ server: http })
  let upgrades = 0
  http.on('upgrade', () => { upgrades++ })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/ws/', upstream: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, websocket: true }],
    server: { maxHeadersCount: 20 }
  })
  t.teardown(async () => {
    await gw.close()
    for (const c of wss.clients) c.terminate()
    wss.close()
    http.closeAllConnections()
    await new Promise<void>((resolve) => http.close(() => resolve()))
  })

  const upgrade = (extra: string, path = '/ws/chat', origin = ORIGIN): string =>
    `GET ${path} HTTP/1.1\r\nHost: gw\r\nOrigin: ${origin}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`

  const cases: Array<[string, string, number, string?, string?]> = [
    ['an ambiguous path', '', 400, '/ws/../admin'],
    ['an encoded slash', '', 400, '/ws/%2e%2e/admin'],
    ['two Origin lines', 'Origin: https://evil.example\r\n', 403],
    ['a comma list Origin', '', 403, '/ws/chat', `${ORIGIN}, https://evil.example`],
    ['Content-Length with Transfer-Encoding', 'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n', 400],
    ['obs-fold', 'X-A: 1\r\n folded\r\n', 400]
  ]
  for (const [name, extra, status, path, origin] of cases) {
    const res = await sendRaw(gw.url, upgrade(extra, path, origin))
    t.equal(res.status, status, `${name}: ${status}`)
    // A 400 for the allowed origin carries its CORS headers, as every error corsgate makes does.
    if (status === 403) t.same(headerValues(res, 'access-control-allow-origin'), [], `${name}: no allow-origin`)
  }

  t.equal(upgrades, 0, 'no refused upgrade reached the upstream')

  // The head checks of request-head.ts `requestHeadError` apply to upgrades too.
  const headChecks: Array<[string, string, number]> = [
    ['two Host headers', 'Host: admin.internal\r\n', 400],
    ['more than maxHeadersCount lines', Array.from({ length: 30 }, (_, i) => `X-H${i}: ${i}\r\n`).join(''), 431]
  ]
  for (const [name, extra, status] of headChecks) {
    const before = upgrades
    const socket = await openSocket(gw.url)
    const done = readUntilClose(socket)
    socket.write(upgrade(extra))
    // A refused upgrade closes the connection; an accepted one answers 101 and stays open.
    const first = await new Promise<string>((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString('latin1'))))
    socket.destroy()
    await done
    t.match(first, new RegExp(`^HTTP/1\\.1 ${status} `), `${name}: ${status}`)
    t.equal(upgrades, before, `${name}: not forwarded`)
  }
})
