// corsgate's delegator with the real @fastify/cors: corsgate decides from the compiled policy
// and the live Redis lists, @fastify/cors writes the headers.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import cors from '@fastify/cors'
import proxy from '@fastify/http-proxy'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { corsgateDelegator, type CorsgateDelegator } from '../../src/fastify-cors.js'
import { ABUSIVE_ORIGIN_LINES, ADVERSARIAL_POLICY, ALLOWED_ORIGINS, LONG_ALLOWED_SUBDOMAIN, REFUSED_ORIGINS } from '../helpers/adversarial-origins.js'
import { corsHeaderNames, send } from '../helpers/http.js'
import { headerValues, sendRaw } from '../helpers/raw-http.js'
import { startRedis } from '../helpers/redis-server.js'
import { uniquePrefix } from '../helpers/redis-gateway.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'

async function startApp (t: Test, config: Record<string, unknown>): Promise<{ url: string, app: FastifyInstance, delegator: CorsgateDelegator, handled: string[] }> {
  const delegator = await corsgateDelegator({ config, logger: pino({ level: 'silent' }) })
  const app = Fastify()
  app.addHook('onClose', async () => { await delegator.close() })
  await app.register(cors, { delegator })
  const handled: string[] = []
  const handler = async (request: FastifyRequest): Promise<{ ok: true }> => {
    handled.push(`${request.method} ${request.headers.origin ?? '-'}`)
    return { ok: true }
  }
  app.route({ method: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'], url: '/*', handler })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, app, delegator, handled }
}

t.test('an allowed origin gets the policy\'s headers from @fastify/cors', async (t) => {
  const { url } = await startApp(t, { policies: { default: { origins: [ORIGIN], maxAge: 600, exposeHeaders: ['X-Request-Id'] } } })
  const res = await send(`${url}/api`, { headers: { origin: ORIGIN } })
  t.equal(res.status, 200)
  t.same(res.headers['access-control-allow-origin'], [ORIGIN])
  t.equal(res.one('access-control-allow-credentials'), 'true')
  t.equal(res.one('access-control-expose-headers'), 'X-Request-Id')
  t.equal(res.one('vary'), 'Origin')

  const pre = await send(`${url}/api`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type' } })
  t.equal(pre.status, 204)
  t.equal(pre.one('access-control-allow-origin'), ORIGIN)
  t.equal(pre.one('access-control-allow-methods'), 'GET, HEAD, POST, PUT, PATCH, DELETE')
  t.equal(pre.one('access-control-allow-headers'), 'Content-Type, Authorization, X-Requested-With, X-CSRF-TOKEN, X-XSRF-TOKEN')
  t.equal(pre.one('access-control-max-age'), '600')

  const plain = await send(`${url}/api`, { method: 'OPTIONS', headers: { origin: ORIGIN } })
  t.equal(plain.one('access-control-allow-methods'), undefined, 'an OPTIONS that is not a preflight is not answered as one')
})

t.test('the delegator counts observed origins, allowed and refused', async (t) => {
  const { url, delegator } = await startApp(t, { policies: { default: { origins: [ORIGIN] } } })
  await send(`${url}/api`, { headers: { origin: ORIGIN } })
  await send(`${url}/api`, { headers: { origin: 'https://evil.example' } })
  const rows = [...(delegator.observed?.observer.table('default')?.rows.values() ?? [])]
  t.same(rows.map((r) => [r.key, r.requests]).sort(), [['https://app.example.com', 1], ['https://evil.example', 1]])
})

t.test('a * policy answers *; "*" headers are echoed', async (t) => {
  const { url } = await startApp(t, { policies: { default: { origins: ['*'], credentials: false, allowHeaders: '*' } } })
  const pre = await send(`${url}/api`, { method: 'OPTIONS', headers: { origin: 'https://anyone.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-one,x-two' } })
  t.equal(pre.one('access-control-allow-origin'), '*')
  t.equal(pre.one('access-control-allow-credentials'), undefined)
  t.equal(pre.one('access-control-allow-headers'), 'x-one,x-two')
})

t.test('the grammar\'s adversarial origins get no CORS headers; refused preflights get no answer of their own', async (t) => {
  const { url, handled } = await startApp(t, { policies: { default: ADVERSARIAL_POLICY } })
  for (const origin of REFUSED_ORIGINS) {
    const res = await send(`${url}/x`, { headers: { origin } })
    t.same(corsHeaderNames(res), [], `${JSON.stringify(origin)}: no CORS headers`)
    const pre = await send(`${url}/x`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } })
    t.equal(pre.status, 404, `${JSON.stringify(origin)}: the preflight falls through to not found`)
    t.same(corsHeaderNames(pre), [])
  }
  // What the delegator cannot do: a refused origin's request still runs (the plugin answers 403).
  t.equal(handled.length, REFUSED_ORIGINS.length, 'the route ran for each refused GET')
  for (const origin of ALLOWED_ORIGINS) {
    t.same((await send(`${url}/x`, { headers: { origin } })).headers['access-control-allow-origin'], [origin], origin)
  }
  for (const [name, lines] of ABUSIVE_ORIGIN_LINES) {
    const res = await sendRaw(url, `GET /x HTTP/1.1\r\nHost: app\r\n${lines}Connection: close\r\n\r\n`)
    const acao = headerValues(res, 'access-control-allow-origin')
    if (name === LONG_ALLOWED_SUBDOMAIN) t.equal(acao.length, 1, `${name}: a real origin, allowed`)
    else t.same(acao, [], `${name}: never reflected`)
  }
})

t.test('live Redis edits are in force for @fastify/cors', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const { url, delegator } = await startApp(t, { redis: { url: redis.url, keyPrefix: prefix, pollIntervalMs: 60_000 }, policies: { default: { origins: [ORIGIN] } } })
  if (delegator.redis?.loaded !== true) await once(delegator.store, 'swap')
  const fresh = 'https://preview.example.org'
  t.same(corsHeaderNames(await send(`${url}/x`, { headers: { origin: fresh } })), [], 'not listed yet')
  const swapped = once(delegator.store, 'swap')
  await redis.client.sadd(`${prefix}policy:default:origins`, fresh)
  await redis.client.publish(`${prefix}reload`, 'default')
  await swapped
  t.equal((await send(`${url}/x`, { headers: { origin: fresh } })).one('access-control-allow-origin'), fresh, 'allowed after the edit')
  const denied = once(delegator.store, 'swap')
  await redis.client.sadd(`${prefix}policy:default:deny`, fresh)
  await redis.client.publish(`${prefix}reload`, 'default')
  await denied
  t.same(corsHeaderNames(await send(`${url}/x`, { headers: { origin: fresh } })), [], 'denied again: deny wins')
  t.equal(delegator.explain({ origin: fresh }).reason, 'denylisted')
})

t.test('behind @fastify/http-proxy the upstream\'s CORS headers win over @fastify/cors\'s (what docs/library.md warns of)', async (t) => {
  const upstream = await startUpstream((_req, res) => { res.setHeader('access-control-allow-origin', '*'); res.setHeader('vary', 'Accept-Encoding'); res.end('x') })
  t.teardown(upstream.close)
  const delegator = await corsgateDelegator({ config: { policies: { default: { origins: [ORIGIN] } } }, logger: pino({ level: 'silent' }) })
  const app = Fastify()
  app.addHook('onClose', async () => { await delegator.close() })
  await app.register(cors, { delegator })
  await app.register(proxy, { upstream: upstream.url, prefix: '/api', rewritePrefix: '/api', httpMethods: ['GET'] })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const res = await send(`${url}/api/x`, { headers: { origin: 'https://evil.example' } })
  t.equal(res.status, 200, 'a refused origin reaches the upstream')
  t.equal(res.one('access-control-allow-origin'), '*', 'and the upstream\'s own header reaches the browser')
  t.equal(res.one('vary'), 'Accept-Encoding', 'without Vary: Origin')
})
