// Plain websockets through the gateway: the upgrade as it came, frames and close codes both ways.
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import { deadPort } from '../helpers/upstream.js'
import { startWsEcho as startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js'
import { startTestGateway } from '../helpers/gateway.js'

const ORIGIN = 'https://app.example.com'

async function setup (t: { teardown: (fn: () => Promise<void>) => void }, extra: Record<string, unknown> = {}): Promise<{ up: WsUpstream, gw: Awaited<ReturnType<typeof startTestGateway>>, wsUrl: string }> {
  const up = await startWsUpstream()
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/ws', upstream: up.url, websocket: true }, { path: '/', upstream: up.url }],
    ...extra
  })
  t.teardown(async () => { await gw.close(); await up.close() })
  return { up, gw, wsUrl: gw.url.replace('http', 'ws') + '/ws' }
}

async function open (url: string, protocols: string[] = [], headers: Record<string, string> = { origin: ORIGIN }): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, { headers })
  await once(ws, 'open')
  return ws
}

/** A raw HTTP exchange: the whole response text (the gateway closes after answering). */
async function rawExchange (port: number, head: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  socket.write(head)
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  await once(socket, 'close')
  return Buffer.concat(chunks).toString()
}

/** Opens a websocket that the gateway is expected to refuse: the handshake response, read whole. */
async function refusal (url: string, headers: Record<string, string>): Promise<{ status: number, headers: IncomingMessage['headers'], body: string }> {
  const ws = new WebSocket(url, { headers })
  ws.on('error', () => {})
  const [, response] = await once(ws, 'unexpected-response') as [unknown, IncomingMessage]
  const body: Buffer[] = []
  response.on('data', (c: Buffer) => body.push(c))
  await once(response, 'end')
  ws.terminate()
  return { status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(body).toString() }
}

function portOf (url: string): number {
  return Number(new URL(url).port)
}

t.test('text, binary and a 1 MiB message echo through the gateway', async (t) => {
  const { wsUrl, gw } = await setup(t)
  const ws = await open(wsUrl)
  ws.send('hello')
  const [text, textBinary] = await once(ws, 'message') as [Buffer, boolean]
  t.equal(text.toString(), 'hello')
  t.equal(textBinary, false)
  const bytes = Buffer.from([0, 1, 2, 255, 254])
  ws.send(bytes)
  const [bin, isBinary] = await once(ws, 'message') as [Buffer, boolean]
  t.same(bin, bytes)
  t.equal(isBinary, true)
  const big = Buffer.alloc(1024 * 1024, 7)
  big[12345] = 9
  ws.send(big)
  const [echoed] = await once(ws, 'message') as [Buffer]
  t.equal(echoed.length, big.length)
  t.ok(echoed.equals(big), 'the 1 MiB message comes back intact')
  t.match(await (await fetch(gw.adminUrl + '/metrics')).text(), /corsgate_open_websockets\{route="\/ws"\} 1/)
  ws.close(1000)
  await once(ws, 'close')
  const line = gw.logs.find((l) => l.kind === 'websocket')
  t.match(line, { route: '/ws', origin: ORIGIN, decision: 'allowed', status: 101, msg: 'request' })
})

t.test('close codes pass through both ways', async (t) => {
  const { wsUrl, up, gw } = await setup(t)
  const connection = once(up.wss, 'connection')
  const ws = await open(wsUrl)
  const [upstreamSide] = await connection as [WebSocket]
  const upstreamClosed = once(upstreamSide, 'close')
  ws.close(4001, 'client says bye')
  const [code, reason] = await upstreamClosed as [number, Buffer]
  t.equal(code, 4001, 'the upstream sees the client close code')
  t.equal(reason.toString(), 'client says bye')
  const [clientCode] = await once(ws, 'close') as [number]
  t.equal(clientCode, 4001)

  const ws2 = await open(wsUrl)
  ws2.send('close:4002')
  const [code2, reason2] = await once(ws2, 'close') as [number, Buffer]
  t.equal(code2, 4002, 'the client sees the upstream close code')
  t.equal(reason2.toString(), 'upstream says bye')
  // Awaited on the gateway forgetting its last tunnel (TunnelSet.delete), not polled.
  const tunnels = gw.gateway.websockets
  await new Promise<void>((resolve) => {
    if (tunnels.size === 0) { resolve(); return }
    const forget = tunnels.delete.bind(tunnels)
    t.capture(tunnels, 'delete', (tunnel: Parameters<typeof forget>[0]) => {
      forget(tunnel)
      if (tunnels.size === 0) resolve()
    })
  })
  t.match(await (await fetch(gw.adminUrl + '/metrics')).text(), /corsgate_open_websockets\{route="\/ws"\} 0/)
})

t.test('the upstream sees every offered subprotocol, Authorization, Cookie, Origin and X-Forwarded-*', async (t) => {
  const { wsUrl, up, gw } = await setup(t)
  const ws = await open(wsUrl, ['chat.v1', 'chat.v2'], { origin: ORIGIN, authorization: 'Bearer abc', cookie: 'session=s1' })
  t.equal(ws.protocol, 'chat.v2', 'the upstream chose among both offers and its answer came back')
  const seen = up.upgrades[0]!
  t.equal(seen.headers['sec-websocket-protocol'], 'chat.v1,chat.v2', 'as the client sent it')
  t.equal(seen.headers.authorization, 'Bearer abc')
  t.equal(seen.headers.cookie, 'session=s1')
  t.equal(seen.headers.origin, ORIGIN)
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1')
  t.equal(seen.headers['x-forwarded-proto'], 'http')
  t.equal(seen.headers['x-forwarded-host'], new URL(gw.url).host)
  t.match(seen.headers['sec-websocket-extensions'], /permessage-deflate/, 'extensions pass too')
  ws.close()
  await once(ws, 'close')

  // Two Sec-WebSocket-Protocol lines, as some clients send them.
  const port = portOf(gw.url)
  const socket = connect(port, '127.0.0.1')
  socket.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nOrigin: ${ORIGIN}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: one\r\nSec-WebSocket-Protocol: two\r\n\r\n`)
  const [head] = await once(socket, 'data') as [Buffer]
  t.match(head.toString(), /^HTTP\/1\.1 101 /)
  t.match(head.toString(), /Sec-WebSocket-Protocol: two/i)
  t.equal(up.upgrades[1]!.headers['sec-websocket-protocol'], 'one, two')
  socket.destroy()
})

t.test('a refused origin gets 403 on the handshake and the upstream never hears of it', async (t) => {
  const { up, gw } = await setup(t)
  let upstreamRequests = 0
  up.server.on('upgrade', () => { upstreamRequests++ })
  up.server.on('request', () => { upstreamRequests++ })
  const port = portOf(gw.url)
  const res = await rawExchange(port, `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nOrigin: https://evil.example\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`)
  t.match(res, /^HTTP\/1\.1 403 Forbidden\r\n/)
  t.notMatch(res, /access-control-allow-origin/i)
  t.match(res, /vary: Origin/i)
  t.same(JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4)), { error: 'cors_denied', reason: 'origin_not_allowed' })
  t.equal(upstreamRequests, 0)
  t.match(gw.logs.find((l) => l.kind === 'websocket'), { decision: 'denied', reason: 'origin_not_allowed', status: 403 })

  t.equal((await refusal(gw.url.replace('http', 'ws') + '/ws', { origin: 'https://evil.example' })).status, 403)
})

t.test('without Origin the policy noOrigin rule decides', async (t) => {
  const up = await startWsUpstream()
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] }, strict: { origins: [ORIGIN], noOrigin: 'deny' } },
    routes: [{ path: '/ws', upstream: up.url, websocket: true }, { path: '/strict', upstream: up.url, websocket: true, policy: 'strict' }]
  })
  t.teardown(async () => { await gw.close(); await up.close() })
  const ws = await open(gw.url.replace('http', 'ws') + '/ws', [], {})
  t.equal(up.upgrades[0]!.headers.origin, undefined)
  ws.close()
  t.equal((await refusal(gw.url.replace('http', 'ws') + '/strict', {})).status, 403)
  t.equal(up.upgrades.length, 1)
})

t.test('Upgrade: h2c and upgrades on routes without websocket are refused', async (t) => {
  const { up, gw } = await setup(t)
  let upstreamRequests = 0
  up.server.on('upgrade', () => { upstreamRequests++ })
  up.server.on('request', () => { upstreamRequests++ })
  const port = portOf(gw.url)
  const h2c = await rawExchange(port, `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nOrigin: ${ORIGIN}\r\n\r\n`)
  t.match(h2c, /^HTTP\/1\.1 400 /)
  t.match(h2c, /CORSGATE_UPGRADE_REFUSED/)
  t.match(h2c, /access-control-allow-origin: https:\/\/app\.example\.com/i, 'an allowed origin sees the real error')
  const plain = await rawExchange(port, `GET /other HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nOrigin: ${ORIGIN}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`)
  t.match(plain, /^HTTP\/1\.1 400 /)
  t.match(plain, /not enabled on this route/)
  t.equal(upstreamRequests, 0)
})

t.test('an upstream that is down gives 502 on the handshake, with CORS headers for an allowed origin', async (t) => {
  const port = await deadPort()
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/ws', upstream: `http://127.0.0.1:${port}`, websocket: true }]
  })
  t.teardown(async () => { await gw.close() })
  const res = await refusal(gw.url.replace('http', 'ws') + '/ws', { origin: ORIGIN })
  t.equal(res.status, 502)
  t.equal(res.headers['access-control-allow-origin'], ORIGIN)
  t.equal(res.headers['access-control-allow-credentials'], 'true')
  t.equal(res.headers.vary, 'Origin')
  t.match(JSON.parse(res.body), { error: 'bad_gateway', statusCode: 502, code: 'CORSGATE_UPSTREAM_UNAVAILABLE' })
  t.match(await (await fetch(gw.adminUrl + '/metrics')).text(), /corsgate_upstream_errors_total\{route="\/ws",kind="unavailable"\} 1/)
})

t.test('a message over websocket.maxMessageBytes closes with 1009; smaller ones pass', async (t) => {
  const { wsUrl, up } = await setup(t, { websocket: { maxMessageBytes: 1000 } })
  const connection = once(up.wss, 'connection')
  const ws = await open(wsUrl)
  const [upstreamSide] = await connection as [WebSocket]
  ws.send(Buffer.alloc(1000))
  const [ok] = await once(ws, 'message') as [Buffer]
  t.equal(ok.length, 1000)
  const upstreamClosed = once(upstreamSide, 'close')
  ws.send(Buffer.alloc(1001))
  const [code] = await once(ws, 'close') as [number]
  t.equal(code, 1009, 'the sender hears "message too big"')
  const [upCode] = await upstreamClosed as [number]
  t.equal(upCode, 1001, 'the upstream hears "going away" and never saw the message')
})

t.test('closing the gateway closes every websocket with 1001, both ways', async (t) => {
  const up = await startWsUpstream()
  t.teardown(async () => { await up.close() })
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/ws', upstream: up.url, websocket: true }]
  })
  const clients = await Promise.all([1, 2, 3].map(async () => await open(gw.url.replace('http', 'ws') + '/ws')))
  const upstreamClosed = [...up.wss.clients].map(async (c) => (await once(c, 'close'))[0] as number)
  const clientClosed = clients.map(async (c) => (await once(c, 'close'))[0] as number)
  await gw.close()
  t.same(await Promise.all(clientClosed), [1001, 1001, 1001])
  t.same(await Promise.all(upstreamClosed), [1001, 1001, 1001])
  t.equal(gw.gateway.websockets.size, 0)
})
