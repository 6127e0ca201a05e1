// corsgate's plugin in an app: live Redis whitelists, Socket.IO through @fastify/http-proxy's
// websocket mode, a policy chosen by the app, the app's auth hooks running after corsgate, what
// the plugin exposes, and bad config named by field.
import { once } from 'node:events'
import t from 'tap'
import Fastify from 'fastify'
import { io, type Socket } from 'socket.io-client'
import corsgate from '../../src/fastify.js'
import type { ConfigError } from '../../src/config/load.js'
import { startEmbeddedGateway } from '../helpers/embedded-gateway.js'
import { corsHeaderNames, send } from '../helpers/http.js'
import { startRedis } from '../helpers/redis-server.js'
import { uniquePrefix, waitFor } from '../helpers/redis-gateway.js'
import { startSocketIoUpstream } from '../helpers/socketio-upstream.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'
const EVIL = 'https://evil.example'

t.test('Redis edits reach the plugin live, and app.close() closes its Redis connections', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const gw = await startEmbeddedGateway({
    config: { redis: { url: redis.url, keyPrefix: prefix, pollIntervalMs: 60_000 }, policies: { default: { origins: [ORIGIN] } } },
    upstream: upstream.url
  })
  let closed = false
  t.teardown(async () => { if (!closed) await gw.close() })
  const { corsgate: cg } = gw.app
  if (cg.redis?.loaded !== true) await once(cg.store, 'swap')
  t.equal(cg.redis?.connected, true, 'the Redis state is exposed')

  const fresh = 'https://preview.example.org'
  t.equal((await send(`${gw.url}/x`, { headers: { origin: fresh } })).status, 403, 'not listed yet')
  // The edit as ops make it (`corsgate origins add` does the same): SADD, then the reload channel.
  const swapped = once(cg.store, 'swap')
  await redis.client.sadd(`${prefix}policy:default:origins`, fresh)
  await redis.client.publish(`${prefix}reload`, 'default')
  await swapped
  const allowed = await send(`${gw.url}/x`, { headers: { origin: fresh } })
  t.equal(allowed.status, 200, 'allowed after the edit, without a restart')
  t.equal(allowed.one('access-control-allow-origin'), fresh)
  t.equal(cg.explain({ origin: fresh, path: '/x' }).ruleSource, 'redis', 'explain names the Redis entry')

  const denySwap = once(cg.store, 'swap')
  await redis.client.sadd(`${prefix}policy:default:deny`, fresh)
  await redis.client.publish(`${prefix}reload`, 'default')
  await denySwap
  t.same((await send(`${gw.url}/x`, { headers: { origin: fresh } })).json(), { error: 'cors_denied', reason: 'denylisted' })

  const own = await redis.client.client('ID') as number
  const clients = async (): Promise<number> => (await redis.client.client('LIST') as string).split('\n').filter((l) => l.startsWith('id=') && !l.startsWith(`id=${own} `)).length
  const before = await clients()
  t.ok(before >= 2, `corsgate holds its connections (${before} besides the test's)`)
  await gw.close()
  closed = true
  // The sockets are closed by then; the server counts them out on its next read.
  await waitFor(async () => (await clients()) === 0, 5000, 'the server to see corsgate\'s connections closed')
  t.pass('no connection left once the app closed')
})

t.test('Socket.IO through @fastify/http-proxy websocket mode: allowed origins connect, others never reach the upstream', async (t) => {
  const up = await startSocketIoUpstream()
  t.teardown(up.close)
  const gw = await startEmbeddedGateway({ config: { policies: { default: { origins: [ORIGIN] } } }, upstream: up.url })
  t.teardown(gw.close)
  const client = (origin: string, transports: Array<'websocket' | 'polling'>): Socket =>
    io(gw.url, { reconnection: false, forceNew: true, timeout: 5000, transports, extraHeaders: { origin }, withCredentials: true })

  for (const transports of [['websocket'], ['polling', 'websocket']] as Array<Array<'websocket' | 'polling'>>) {
    const socket = client(ORIGIN, transports)
    t.teardown(() => { socket.close() })
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('connect_error', reject) })
    t.equal(await socket.emitWithAck('echo', 'through the proxy'), 'through the proxy', `${transports.join('+')}: connected and echoing`)
    if (transports.length > 1 && socket.io.engine.transport.name !== 'websocket') await new Promise((resolve) => socket.io.engine.once('upgrade', resolve))
    t.equal(socket.io.engine.transport.name, 'websocket', `${transports.join('+')}: on the websocket transport`)
    socket.close()
  }
  await up.idle()
  const requests = up.requests.length
  const upgrades = up.upgrades.length
  const tcp = up.tcpConnections

  for (const transports of [['websocket'], ['polling']] as Array<Array<'websocket' | 'polling'>>) {
    const socket = client(EVIL, transports)
    t.teardown(() => { socket.close() })
    const err = await new Promise<Error>((resolve, reject) => {
      socket.once('connect', () => reject(new Error('connected, but should have been refused')))
      socket.once('connect_error', resolve)
    })
    t.ok(err instanceof Error, `${transports[0]!}: refused (${err.message})`)
    socket.close()
  }
  t.equal(up.upgrades.length, upgrades, 'no refused upgrade reached the upstream')
  t.equal(up.requests.length, requests, 'no refused polling request reached the upstream')
  t.equal(up.tcpConnections, tcp, 'the upstream was not even dialled')
})

t.test('a policy chosen by the app; a name that is not defined is a 500, never another policy', async (t) => {
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const gw = await startEmbeddedGateway({
    config: { policies: { partners: { origins: ['https://partner.example.org'] }, open: { origins: ['*'], credentials: false } } },
    upstream: upstream.url,
    options: {
      policy: (request) => {
        const tenant = request.headers['x-tenant']
        return tenant === 'open' ? 'open' : tenant === 'typo' ? 'opne' : tenant === 'none' ? undefined : 'partners'
      }
    }
  })
  t.teardown(gw.close)
  t.equal((await send(`${gw.url}/x`, { headers: { origin: 'https://partner.example.org' } })).status, 200)
  t.equal((await send(`${gw.url}/x`, { headers: { origin: EVIL } })).status, 403, 'the partners policy refuses others')
  const open = await send(`${gw.url}/x`, { headers: { origin: EVIL, 'x-tenant': 'open' } })
  t.equal(open.one('access-control-allow-origin'), '*', 'the open policy, chosen by the app')
  const seen = upstream.seen.length
  const typo = await send(`${gw.url}/x`, { headers: { origin: EVIL, 'x-tenant': 'typo' } })
  t.equal(typo.status, 500)
  t.same(corsHeaderNames(typo), [])
  t.equal(upstream.seen.length, seen, 'not forwarded')
  // No name, no route: `default` would judge it, and there is none; never the first policy.
  const unnamed = await send(`${gw.url}/x`, { headers: { origin: EVIL, 'x-tenant': 'none' } })
  t.equal(unnamed.status, 500, 'a request no policy is named for is refused, not judged by "partners" or "open"')
  t.same(corsHeaderNames(unnamed), [])
  t.equal(upstream.seen.length, seen, 'not forwarded either')
  t.equal(gw.app.corsgate.explain({ origin: EVIL, policy: 'open' }).allowed, true, 'explain takes the policy name too')
})

t.test('corsgate judges before the app\'s auth hook; the app\'s own answers get CORS headers', async (t) => {
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  let authRuns = 0
  const gw = await startEmbeddedGateway({
    config: { policies: { default: { origins: [ORIGIN] } } },
    upstream: upstream.url,
    before: (app) => {
      app.addHook('onRequest', async (request, reply) => {
        authRuns++
        if (request.headers.authorization !== 'Bearer ok') await reply.code(401).send({ error: 'unauthorized' })
      })
      app.get('/own', async (_request, reply) => await reply.header('access-control-allow-origin', '*').header('vary', 'Cookie').send({ own: true }))
    }
  })
  t.teardown(gw.close)
  const pre = await send(`${gw.url}/api`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'PUT' } })
  t.equal(pre.status, 204, 'the preflight is answered although it carries no credentials')
  t.equal((await send(`${gw.url}/api`, { headers: { origin: EVIL, authorization: 'Bearer ok' } })).status, 403)
  t.equal(authRuns, 0, 'neither reached the auth hook')
  const unauth = await send(`${gw.url}/api`, { headers: { origin: ORIGIN } })
  t.equal(unauth.status, 401)
  t.equal(unauth.one('access-control-allow-origin'), ORIGIN, 'the app\'s 401 carries CORS headers, so the browser shows it')
  t.equal(unauth.one('vary'), 'Origin')
  const own = await send(`${gw.url}/own`, { headers: { origin: ORIGIN, authorization: 'Bearer ok' } })
  t.same(own.json(), { own: true })
  t.same(own.headers['access-control-allow-origin'], [ORIGIN], 'the app\'s own * replaced by the policy\'s answer')
  t.equal(own.one('vary'), 'Cookie, Origin')
  t.equal(upstream.seen.length, 0)
})

t.test('metrics, explain and observed origins are exposed for the app to mount', async (t) => {
  const upstream = await startUpstream()
  t.teardown(upstream.close)
  const gw = await startEmbeddedGateway({
    config: { policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/api/' }] },
    upstream: upstream.url,
    before: (app) => {
      app.get('/corsgate/metrics', async (_request, reply) => {
        const registry = app.corsgate.metrics!.registry
        return await reply.type(registry.contentType).send(await registry.metrics())
      })
    }
  })
  t.teardown(gw.close)
  await send(`${gw.url}/api/x`, { headers: { origin: ORIGIN } })
  await send(`${gw.url}/api/x`, { headers: { origin: EVIL } })
  const text = (await send(`${gw.url}/corsgate/metrics`)).body
  t.match(text, /corsgate_requests_total\{route="\/api\/",kind="actual",decision="allowed",reason="origin_allowed"\} 1/)
  t.match(text, /corsgate_requests_total\{route="\/api\/",kind="actual",decision="denied",reason="origin_not_allowed"\} 1/)
  t.notMatch(text, /process_cpu/, 'no process metrics: those are the app\'s')
  t.match(gw.app.corsgate.explain({ origin: EVIL, path: '/api/x' }), { allowed: false, reason: 'origin_not_allowed', route: '/api/', status: 403 })
  t.match(gw.app.corsgate.explain({ origin: ORIGIN, path: '/elsewhere' }), { allowed: true, route: null, status: 'forwarded' })
  const table = gw.app.corsgate.observed?.observer.table('default')
  t.ok(table !== undefined, 'observed origins are counted')
  t.match(gw.logs.find((l) => l.msg === 'request'), { origin: EVIL, decision: 'denied', reason: 'origin_not_allowed', status: 403 }, 'a refusal is logged with the app\'s logger')
  t.notOk(gw.logs.some((l) => l.msg === 'request' && l.origin === ORIGIN), 'allowed requests are not logged by default')
})

t.test('a bad config stops registration with every problem named by its field', async (t) => {
  const cases: Array<[Record<string, unknown> | string, RegExp]> = [
    [{ policies: { default: { origins: ['https://*.com'] } } }, /policies\.default\.origins\[0\]/],
    [{ policies: { default: { origins: [ORIGIN], credentials: 'yes' } } }, /policies\.default\.credentials/],
    [{ policies: { api: { origins: [ORIGIN] } } }, /"default" policy, which is not defined/],
    // Routes that leave paths uncovered: those requests are the app's, judged by `default`.
    [{ policies: { open: { origins: ['*'], credentials: false }, strict: { origins: [ORIGIN] } }, routes: [{ path: '/api/', policy: 'strict' }] }, /"default" policy, which is not defined/],
    [{ policies: { default: {} }, routes: [{ path: '/x', policy: 'nope' }] }, /routes\[0\]\.policy: names policy "nope"/],
    [{ policies: { default: {} }, plugins: [{ name: '@fastify/helmet' }] }, /plugins: .*register plugins on your own Fastify app/],
    ['/nonexistent/corsgate.yaml', /cannot read the file/]
  ]
  for (const [config, message] of cases) {
    const app = Fastify()
    const err = await app.register(corsgate, { config }).ready().then(() => undefined, (e: unknown) => e as ConfigError)
    t.equal(err?.code, 'CORSGATE_CONFIG_INVALID', String(message))
    t.match(err?.message, message)
    await app.close()
  }
  const input = { policies: { default: { origins: [ORIGIN] } } }
  const app = Fastify()
  await app.register(corsgate, { config: input, env: { CORSGATE_ORIGINS: 'https://env.example.org' } }).ready()
  t.equal(app.corsgate.explain({ origin: 'https://env.example.org' }).allowed, true, 'CORSGATE_* variables apply when given')
  t.same(input, { policies: { default: { origins: [ORIGIN] } } }, 'the caller\'s object is left as it was')
  await app.close()
})
