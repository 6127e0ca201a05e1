// Origin header abuse: whatever an attacker puts in Origin, it is refused or denied and never
// reflected into Access-Control-Allow-Origin (or anywhere else in the answer).
import t from 'tap'
import { ABUSIVE_ORIGIN_LINES, LONG_ALLOWED_SUBDOMAIN } from '../helpers/adversarial-origins.js'
import { startTestGateway } from '../helpers/gateway.js'
import { headerValues, sendRaw } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'

t.test('abusive Origin headers are denied or refused, never reflected', async (t) => {
  let upstreamRequests = 0
  const upstream = await startUpstream()
  upstream.server.on('request', () => { upstreamRequests++ })
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN, 'https://*.example.com'] } },
    routes: [{ path: '/', upstream: upstream.url }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const req = (originLines: string, method = 'GET'): string =>
    `${method} /api HTTP/1.1\r\nHost: gw\r\n${originLines}${method === 'OPTIONS' ? 'Access-Control-Request-Method: PUT\r\n' : ''}Connection: close\r\n\r\n`

  const cases = ABUSIVE_ORIGIN_LINES
  for (const [name, lines] of cases) {
    for (const method of ['GET', 'OPTIONS']) {
      const res = await sendRaw(gw.url, req(lines, method))
      const acao = headerValues(res, 'access-control-allow-origin')
      if (name === LONG_ALLOWED_SUBDOMAIN) {
        // A long but well-formed subdomain of an allowed wildcard is a real origin: allowed,
        // and echoed byte for byte, once.
        t.ok(res.status === 200 || res.status === 204, `${name} (${method}): allowed`)
        t.equal(acao.length, 1, `${name} (${method}): one allow-origin`)
        continue
      }
      t.equal(res.status, 403, `${name} (${method}): 403`)
      t.same(acao, [], `${name} (${method}): no allow-origin`)
      t.same(headerValues(res, 'access-control-allow-credentials'), [], `${name} (${method}): no credentials`)
      t.notMatch(res.body, /evil|app\.example|aaaa/, `${name} (${method}): the body does not echo the origin`)
    }
  }

  const ctl: Array<[string, string]> = [
    ['a NUL', 'Origin: https://app.example.com\u0000.evil\r\n'],
    ['a bare CR', 'Origin: https://app.example.com\r.evil\r\n'],
    ['an escape character', 'Origin: https://app.example.com\u001b[2J\r\n'],
    ['DEL', 'Origin: https://app.example.com\u007f\r\n']
  ]
  for (const [name, lines] of ctl) {
    const res = await sendRaw(gw.url, req(lines))
    t.equal(res.status, 400, `control character ${name}: 400 from the parser`)
    t.same(headerValues(res, 'access-control-allow-origin'), [], `control character ${name}: no allow-origin`)
  }

  const tooBig = await sendRaw(gw.url, req(`Origin: https://${'a'.repeat(20 * 1024)}.example.com\r\n`))
  t.equal(tooBig.status, 431, 'an Origin over the header size limit: 431')

  t.equal(upstreamRequests, 1, 'only the one allowed long-subdomain GET reached the upstream')
  const ok = await fetch(`${gw.url}/api`, { headers: { origin: ORIGIN } })
  t.equal(ok.headers.get('access-control-allow-origin'), ORIGIN, 'an honest origin is still served')
})
