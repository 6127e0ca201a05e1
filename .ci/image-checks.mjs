// The HTTP and websocket checks .ci/image.sh runs against the container, from the host:
//   node .ci/image-checks.mjs GATEWAY_URL ALLOWED_ORIGIN DENIED_ORIGIN
// One line per check ("ok - ..." / "not ok - ... : why"); exit 1 if any fails.
import WebSocket from 'ws'

const [gateway, allowed, denied] = process.argv.slice(2)
if (!gateway || !allowed || !denied) {
  console.error('usage: node .ci/image-checks.mjs GATEWAY_URL ALLOWED_ORIGIN DENIED_ORIGIN')
  process.exit(2)
}
let failed = 0
function check (name, ok, why) {
  console.log(ok ? `ok - ${name}` : `not ok - ${name}: ${why}`)
  if (!ok) failed++
}
const call = (path, init) => fetch(`${gateway}${path}`, { ...init, signal: AbortSignal.timeout(5000) })

// Allowed preflight: answered by the gateway with the policy's headers.
const pre = await call('/hello', { method: 'OPTIONS', headers: { origin: allowed, 'access-control-request-method': 'GET' } })
check('allowed preflight is 204 with Access-Control-Allow-Origin', pre.status === 204 && pre.headers.get('access-control-allow-origin') === allowed,
  `status ${pre.status}, allow-origin ${pre.headers.get('access-control-allow-origin')}`)

// Allowed GET: forwarded; the upstream's own CORS headers are replaced by the gateway's.
const get = await call('/hello', { headers: { origin: allowed } })
const body = await get.json().catch(() => null)
check('allowed GET reaches the upstream', get.status === 200 && body?.hello === 'from upstream', `status ${get.status}, body ${JSON.stringify(body)}`)
check('allow-origin is the request origin, not the upstream\'s *', get.headers.get('access-control-allow-origin') === allowed,
  `got ${get.headers.get('access-control-allow-origin')}`)
check('the upstream\'s allow-credentials is stripped (policy has credentials: false)', get.headers.get('access-control-allow-credentials') === null,
  `got ${get.headers.get('access-control-allow-credentials')}`)
check('the upstream\'s expose-headers is stripped', !(get.headers.get('access-control-expose-headers') ?? '').includes('x-upstream-secret'),
  `got ${get.headers.get('access-control-expose-headers')}`)

// Denied origin: 403 from the gateway, no CORS headers.
const deny = await call('/hello', { headers: { origin: denied } })
await deny.arrayBuffer()
check('denied origin gets 403 without allow-origin', deny.status === 403 && deny.headers.get('access-control-allow-origin') === null,
  `status ${deny.status}, allow-origin ${deny.headers.get('access-control-allow-origin')}`)

// Websocket upgrade through the container: echo from the upstream; a denied origin is refused.
const wsUrl = gateway.replace(/^http/, 'ws') + '/ws/echo'
const echo = await new Promise((resolve) => {
  const ws = new WebSocket(wsUrl, { origin: allowed, handshakeTimeout: 5000 })
  ws.on('open', () => ws.send('ping'))
  ws.on('message', (data) => { resolve(String(data)); ws.close() })
  ws.on('error', (err) => resolve(`error: ${err.message}`))
  ws.on('unexpected-response', (_req, res) => resolve(`status ${res.statusCode}`))
})
check('websocket upgrade from an allowed origin echoes through the container', echo === 'echo: ping', echo)
const refused = await new Promise((resolve) => {
  const ws = new WebSocket(wsUrl, { origin: denied, handshakeTimeout: 5000 })
  ws.on('open', () => { resolve('opened'); ws.close() })
  ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode); res.resume() })
  ws.on('error', (err) => resolve(`error: ${err.message}`))
})
check('websocket upgrade from a denied origin is refused with 403', refused === 403, String(refused))

process.exit(failed === 0 ? 0 : 1)
