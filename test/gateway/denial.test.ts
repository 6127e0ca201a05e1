// Adversarial origins through the real gateway: every denial carries no CORS headers and the
// upstream sees nothing; every allowed answer has exactly one Access-Control-Allow-Origin,
// byte-equal to the request's Origin.
import { connect } from 'node:net'
import t from 'tap'
import { ADVERSARIAL_POLICY, ALLOWED_ORIGINS, REFUSED_ORIGINS } from '../helpers/adversarial-origins.js'
import { startTestGateway } from '../helpers/gateway.js'
import { corsHeaderNames, send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const POLICY = ADVERSARIAL_POLICY
const REFUSED = REFUSED_ORIGINS
const ALLOWED = ALLOWED_ORIGINS

t.test('refused origins: 403, no CORS headers, upstream untouched', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: POLICY }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  for (const origin of REFUSED) {
    for (const method of ['GET', 'OPTIONS']) {
      const headers: Record<string, string> = { origin }
      if (method === 'OPTIONS') headers['access-control-request-method'] = 'GET'
      const res = await send(`${gw.url}/x`, { method, headers })
      t.equal(res.status, 403, `${method} ${JSON.stringify(origin)}`)
      t.same(corsHeaderNames(res), [], `${method} ${JSON.stringify(origin)}: no CORS headers`)
    }
  }
  t.equal(upstream.seen.length, 0, 'the upstream saw none of them')
})

t.test('non-ASCII origins are never matched or reflected', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: POLICY }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  // Raw bytes: Node's client refuses to send non-ASCII header values itself.
  for (const origin of ['https://аpp.example.com', 'https://ａｐｐ.example.com', 'https://app.example.com\u0000']) {
    const head = await new Promise<string>((resolve, reject) => {
      const { port } = new URL(gw.url)
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(Buffer.concat([Buffer.from('GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nOrigin: '), Buffer.from(origin, 'utf8'), Buffer.from('\r\n\r\n')]))
      })
      let data = ''
      socket.on('data', (c: Buffer) => { data += c.toString('latin1') })
      socket.on('end', () => resolve(data))
      socket.on('error', reject)
    })
    t.match(head, /^HTTP\/1\.1 (403|400) /, JSON.stringify(origin))
    t.notMatch(head.toLowerCase(), /access-control-allow-origin/, 'never reflected')
  }
  t.equal(upstream.seen.length, 0)
})

t.test('allowed origins: exactly one Access-Control-Allow-Origin, byte-equal to the Origin', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: POLICY }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  for (const origin of ALLOWED) {
    const actual = await send(`${gw.url}/x`, { headers: { origin } })
    t.equal(actual.status, 200, origin)
    t.same(actual.headers['access-control-allow-origin'], [origin], `${origin}: one header, byte-equal`)
    const pre = await send(`${gw.url}/x`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'PUT' } })
    t.equal(pre.status, 204)
    t.same(pre.headers['access-control-allow-origin'], [origin])
  }
  t.equal(upstream.seen.length, ALLOWED.length)
})

t.test('the null origin is allowed only where listed, and only as exactly "null"', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['null'] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const ok = await send(`${gw.url}/x`, { headers: { origin: 'null' } })
  t.equal(ok.status, 200)
  t.same(ok.headers['access-control-allow-origin'], ['null'])
  for (const origin of ['Null', 'NULL', '"null"', 'null, null']) {
    t.equal((await send(`${gw.url}/x`, { headers: { origin } })).status, 403, origin)
  }
})

t.test('deny wins over allow and names the rule in the log', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['https://*.example.com'], deny: ['https://legacy.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/x`, { headers: { origin: 'https://legacy.example.com' } })
  t.equal(res.status, 403)
  t.same(res.json(), { error: 'cors_denied', reason: 'denylisted' })
  t.equal((await send(`${gw.url}/x`, { headers: { origin: 'https://new.example.com' } })).status, 200)
  const line = gw.logs.find((l) => l.msg === 'request' && l.origin === 'https://legacy.example.com')
  t.match(line, { decision: 'denied', reason: 'denylisted', rule: 'https://legacy.example.com', status: 403 })
})

t.test('an actual request with a method outside the policy is denied', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'], methods: ['GET', 'HEAD'] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/x`, { method: 'POST', headers: { origin: 'https://app.example.com', 'content-type': 'text/plain' }, body: 'x' })
  t.equal(res.status, 403)
  t.same(res.json(), { error: 'cors_denied', reason: 'method_not_allowed', detail: 'POST' })
  t.equal(upstream.seen.length, 0)
})
