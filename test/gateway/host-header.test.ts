// Which `Host` the upstream is sent (route `hostHeader`): the client's by default, as Envoy,
// Traefik and HAProxy do (Laravel builds URLs, signed routes and cookies from it), or the
// upstream URL's own. Over TLS the server name stays the upstream's whatever the Host.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import WebSocket from 'ws'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { sendRaw } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'
import { startWsEcho } from '../helpers/ws-upstream.js'

const ORIGIN = 'https://app.example.com'
const tlsDir = fileURLToPath(new URL('../fixtures/tls/', import.meta.url))

t.test('the client\'s Host reaches the upstream by default; hostHeader: upstream sends the upstream\'s', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/own/', upstream: upstream.url, hostHeader: 'upstream' }, { path: '/', upstream: upstream.url }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const kept = await send(`${gw.url}/users`, { headers: { host: 'api.example.com', origin: ORIGIN } })
  const own = await send(`${gw.url}/own/users`, { headers: { host: 'api.example.com', origin: ORIGIN } })
  t.equal(kept.status, 200)
  t.equal(own.status, 200)
  const [a, b] = upstream.seen
  t.equal(a?.headers.host, 'api.example.com', 'the client\'s Host, as the client sent it')
  t.equal(a?.headers['x-forwarded-host'], 'api.example.com')
  t.equal(b?.headers.host, new URL(upstream.url).host, 'the upstream URL\'s host')
  t.equal(b?.headers['x-forwarded-host'], 'api.example.com', 'the client\'s Host still travels in X-Forwarded-Host')

  // HTTP/1.0 allows a request with no Host: the upstream then gets its own.
  const bare = await sendRaw(gw.url, 'GET /bare HTTP/1.0\r\n\r\n')
  t.equal(bare.status, 200)
  t.equal(upstream.seen[2]?.headers.host, new URL(upstream.url).host)
})

t.test('websocket upgrades follow the same choice', async (t) => {
  const upstream = await startWsEcho()
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/own/', upstream: upstream.url, websocket: true, hostHeader: 'upstream' }, { path: '/', upstream: upstream.url, websocket: true }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  for (const path of ['/ws', '/own/ws']) {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}${path}`, { origin: ORIGIN, headers: { host: 'api.example.com' } })
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
    ws.close()
  }
  t.equal(upstream.upgrades[0]?.headers.host, 'api.example.com')
  t.equal(upstream.upgrades[1]?.headers.host, new URL(upstream.url).host)
})

t.test('https upstreams: the server name is the upstream\'s whatever Host the client sent, on one pooled connection', async (t) => {
  const seen: Array<{ host: string | undefined, servername: string | false | null }> = []
  let connections = 0
  const server = createServer({ key: readFileSync(`${tlsDir}key.pem`), cert: readFileSync(`${tlsDir}cert.pem`) }, (req, res) => {
    seen.push({ host: req.headers.host, servername: (req.socket as TLSSocket).servername })
    res.end('secure')
  })
  server.on('secureConnection', () => { connections++ })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  t.teardown(() => { server.closeAllConnections(); server.close() })

  const gw = await startTestGateway({
    server: { upstreamCaFile: `${tlsDir}cert.pem` },
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/by-ip/', upstream: `https://127.0.0.1:${port}` }, { path: '/', upstream: `https://localhost:${port}` }]
  })
  t.teardown(async () => { await gw.close() })

  for (const host of ['a.example.com', 'b.example.com', 'a.example.com']) {
    const res = await send(`${gw.url}/x`, { headers: { host, origin: ORIGIN } })
    t.equal(res.status, 200, `verified against the upstream's name with Host ${host}`)
  }
  t.same(seen.map((s) => s.host), ['a.example.com', 'b.example.com', 'a.example.com'])
  t.ok(seen.every((s) => s.servername === 'localhost'), 'SNI names the upstream, not the client\'s Host')
  t.equal(connections, 1, 'requests with different Hosts share the pooled connection')

  const byIp = await send(`${gw.url}/by-ip/x`, { headers: { host: 'a.example.com', origin: ORIGIN } })
  t.equal(byIp.status, 200, 'an upstream given by IP address is verified against the address')
  t.equal(seen[3]?.host, 'a.example.com')
  t.notOk(seen[3]?.servername, 'no SNI for an IP address')
})
