// Hooks registered by code on the instance `buildGateway` returns apply to proxied requests and
// websocket upgrades; corsgate judges first, so preflights never meet the hook and a denied
// origin is refused before it runs; the hook's own answers carry the CORS headers.
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import t from 'tap'
import WebSocket from 'ws'
import { buildTestGateway } from '../helpers/gateway.js'
import { corsHeaderNames, send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'
import { startWsEcho } from '../helpers/ws-upstream.js'

const ORIGIN = 'https://app.example.com'
const EVIL = 'https://evil.example.org'

/** A gateway whose only plugin is an `onRequest` hook answering 401 without `Authorization: Bearer ok`. */
async function withAuthHook (t: { teardown: (fn: () => Promise<void>) => void }): Promise<{ url: string, hookRuns: string[], upstream: Awaited<ReturnType<typeof startUpstream>>, ws: Awaited<ReturnType<typeof startWsEcho>> }> {
  const upstream = await startUpstream()
  const ws = await startWsEcho()
  const gw = await buildTestGateway({
    policies: { default: { origins: [ORIGIN], exposeHeaders: ['X-Reason'] } },
    routes: [{ path: '/ws', upstream: ws.url, websocket: true }, { path: '/', upstream: upstream.url }]
  })
  const hookRuns: string[] = []
  gw.app.addHook('onRequest', async (request, reply) => {
    hookRuns.push(`${request.method} ${request.url}`)
    if (request.headers.authorization !== 'Bearer ok') {
      await reply.code(401).header('x-reason', 'no token').send({ error: 'unauthorized' })
    }
  })
  const url = await gw.listen()
  t.teardown(async () => { await gw.app.close(); await upstream.close(); await ws.close() })
  return { url, hookRuns, upstream, ws }
}

t.test('an onRequest hook on the gateway instance sees proxied requests', async (t) => {
  const { url, hookRuns, upstream } = await withAuthHook(t)

  const refused = await send(`${url}/orders`, { headers: { origin: ORIGIN } })
  t.equal(refused.status, 401, 'an allowed origin without a token: the hook answers')
  t.equal(refused.one('access-control-allow-origin'), ORIGIN, 'the hook\'s 401 carries the CORS headers, so the page can read it')
  t.equal(refused.one('access-control-allow-credentials'), 'true')
  t.equal(refused.one('access-control-expose-headers'), 'X-Reason')
  t.match(refused.one('vary'), /Origin/)
  t.equal(refused.one('x-reason'), 'no token')

  const noOrigin = await send(`${url}/orders`)
  t.equal(noOrigin.status, 401, 'no Origin (curl, an app): the hook answers too')
  t.same(corsHeaderNames(noOrigin), [], 'and no CORS headers are due')

  const served = await send(`${url}/orders`, { headers: { origin: ORIGIN, authorization: 'Bearer ok' } })
  t.equal(served.status, 200, 'with the token: forwarded')
  t.equal(served.one('access-control-allow-origin'), ORIGIN)
  t.same(upstream.seen.map((r) => r.url), ['/orders'], 'only the authorised request reached the upstream')
  t.same(hookRuns, ['GET /orders', 'GET /orders', 'GET /orders'])
})

t.test('preflights are answered before any hook; a denied origin is refused before the hook runs', async (t) => {
  const { url, hookRuns, upstream } = await withAuthHook(t)
  const preflight = await send(`${url}/orders`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization' } })
  t.equal(preflight.status, 204, 'a preflight is never 401: browsers send no credentials with it')
  t.equal(preflight.one('access-control-allow-origin'), ORIGIN)
  const denied = await send(`${url}/orders`, { headers: { origin: EVIL, authorization: 'Bearer ok' } })
  t.equal(denied.status, 403)
  t.same(denied.json(), { error: 'cors_denied', reason: 'origin_not_allowed' })
  t.same(hookRuns, [], 'the hook never saw either')
  t.same(upstream.seen, [])
})

t.test('the same hook applies to websocket upgrades', async (t) => {
  const { url, hookRuns, ws } = await withAuthHook(t)
  const wsUrl = url.replace('http', 'ws') + '/ws'

  const refused = new WebSocket(wsUrl, { origin: ORIGIN })
  refused.on('error', () => {})
  const [, res] = await once(refused, 'unexpected-response') as [unknown, IncomingMessage]
  t.equal(res.statusCode, 401, 'the hook refuses the handshake')
  t.equal(res.headers['access-control-allow-origin'], ORIGIN, 'with the CORS headers')
  res.resume()
  refused.terminate()

  const denied = new WebSocket(wsUrl, { origin: EVIL, headers: { authorization: 'Bearer ok' } })
  denied.on('error', () => {})
  const [, deniedRes] = await once(denied, 'unexpected-response') as [unknown, IncomingMessage]
  t.equal(deniedRes.statusCode, 403, 'a denied origin is refused before the hook')
  deniedRes.resume()
  denied.terminate()

  const open = new WebSocket(wsUrl, { origin: ORIGIN, headers: { authorization: 'Bearer ok' } })
  await once(open, 'open')
  open.send('hello')
  const [message] = await once(open, 'message') as [Buffer]
  t.equal(message.toString(), 'hello', 'with the token the tunnel is open end to end')
  open.close()
  await once(open, 'close')
  t.same(hookRuns, ['GET /ws', 'GET /ws'], 'the hook ran for both handshakes from the allowed origin')
  t.equal(ws.upgrades.length, 1, 'only the authorised upgrade reached the upstream')
})

t.test('another request listener on the server does not take requests away', async (t) => {
  const upstream = await startUpstream()
  const gw = await buildTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url }] })
  let seenByOther = 0
  gw.app.server.on('request', () => { seenByOther++ })
  const url = await gw.listen()
  t.teardown(async () => { await gw.app.close(); await upstream.close() })
  const res = await send(`${url}/x`, { headers: { origin: ORIGIN } })
  t.equal(res.status, 200, 'still forwarded, not a 404')
  t.equal(res.one('access-control-allow-origin'), ORIGIN)
  t.equal(seenByOther, 1, 'the other listener saw the request as well')
})
