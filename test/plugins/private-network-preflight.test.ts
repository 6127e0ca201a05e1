// A Private Network Access preflight (`Access-Control-Request-Private-Network: true`) gets the
// same answer on a route a user plugin is scoped to (the request goes through Fastify's
// routes) as on a route no plugin watches (the shortcut), and through `inject`, where
// corsgate judges in its first `onRequest` hook. The plugin never sees the preflight.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestGateway, startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'
const PREFLIGHT = { origin: ORIGIN, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-token', 'access-control-request-private-network': 'true' }
const POLICY = { origins: [ORIGIN], privateNetwork: true, allowHeaders: ['X-Token'], maxAge: 600 }
/** Headers that differ between any two answers (the clock, the connection). */
const PER_CONNECTION = new Set(['date', 'connection', 'keep-alive'])

function answerOf (status: number, headers: Record<string, string | string[] | number | undefined>): { status: number, headers: Record<string, string> } {
  const kept: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || PER_CONNECTION.has(name.toLowerCase())) continue
    kept[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  return { status, headers: kept }
}

const flat = (headers: Record<string, string[]>): Record<string, string> => Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, v.join(', ')]))

/** Scoped to `/plugged/`: records every request it sees and stamps its answers. */
function stampPlugin (seen: string[]): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    app.addHook('onRequest', async (request) => { seen.push(`${request.method} ${request.url}`) })
    app.addHook('onSend', async (_request, reply, payload) => { reply.header('x-plugged', 'yes'); return payload })
  }
}

t.test('the same Private-Network preflight answer with a user plugin on the route as without', async (t) => {
  const upstream = await startUpstream()
  const seen: string[] = []
  const gw = await startTestGateway({
    policies: { default: POLICY },
    routes: [{ path: '/plugged/', upstream: upstream.url }, { path: '/', upstream: upstream.url }]
  }, {}, { plugins: [{ name: 'stamp', plugin: stampPlugin(seen), routes: ['/plugged/'] }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  // The plugin is really on /plugged/ and only there: its route goes through Fastify.
  const pluggedGet = await send(`${gw.url}/plugged/items`, { headers: { origin: ORIGIN } })
  t.equal(pluggedGet.one('x-plugged'), 'yes', 'the plugin answers on its route')
  const plainGet = await send(`${gw.url}/items`, { headers: { origin: ORIGIN } })
  t.equal(plainGet.one('x-plugged'), undefined, 'and not on the other route')
  seen.length = 0

  const plugged = await send(`${gw.url}/plugged/items`, { method: 'OPTIONS', headers: PREFLIGHT })
  const plain = await send(`${gw.url}/items`, { method: 'OPTIONS', headers: PREFLIGHT })
  t.equal(plain.status, 204)
  t.equal(plain.one('access-control-allow-private-network'), 'true', 'granted where no plugin is')
  t.equal(plain.one('access-control-allow-origin'), ORIGIN)
  t.same(answerOf(plugged.status, flat(plugged.headers)), answerOf(plain.status, flat(plain.headers)), 'the answer on the plugged route is the same, header for header')
  t.same(seen, [], 'the plugin never saw a preflight')
  t.same(upstream.seen.map((r) => r.method), ['GET', 'GET'], 'no preflight was forwarded')

  // Without the request header, no grant on either route.
  for (const path of ['/plugged/items', '/items']) {
    const { 'access-control-request-private-network': _asked, ...ordinary } = PREFLIGHT
    const res = await send(`${gw.url}${path}`, { method: 'OPTIONS', headers: ordinary })
    t.equal(res.status, 204, `${path}: answered`)
    t.equal(res.one('access-control-allow-private-network'), undefined, `${path}: granted only when asked`)
  }
})

t.test('through Fastify alone (inject), with a plugin registered on the instance: the same answer', async (t) => {
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const input = { policies: { default: POLICY }, routes: [{ path: '/', upstream: upstream.url }] }
  const reference = await startTestGateway(input)
  t.teardown(reference.close)
  const expected = await send(`${reference.url}/items`, { method: 'OPTIONS', headers: PREFLIGHT })

  const gw = await buildTestGateway(input)
  const seen: string[] = []
  await gw.app.register(stampPlugin(seen))
  t.teardown(async () => { await gw.app.close() })
  const injected = await gw.app.inject({ method: 'OPTIONS', url: '/items', headers: PREFLIGHT })
  t.equal(injected.headers['access-control-allow-private-network'], 'true', 'granted')
  // Fastify's reply drops Content-Length from a 204 (RFC 9110 section 8.6); every CORS
  // header and Vary must match.
  const withoutLength = ({ status, headers: { 'content-length': _length, ...headers } }: ReturnType<typeof answerOf>): ReturnType<typeof answerOf> => ({ status, headers })
  t.same(withoutLength(answerOf(injected.statusCode, injected.headers)), withoutLength(answerOf(expected.status, flat(expected.headers))), 'as the server answers it, header for header')
  t.same(seen, [], 'the plugin never saw the preflight')
  t.same(upstream.seen, [], 'nothing was forwarded')
})
