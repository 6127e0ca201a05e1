// Origin header abuse: whatever an attacker puts in Origin, it is refused or denied and never
// reflected into Access-Control-Allow-Origin (or anywhere else in the answer).
import t from 'tap'
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

  const cases: Array<[string, string]> = [
    ['two Origin lines, the allowed one second', `Origin: https://evil.example\r\nOrigin: ${ORIGIN}\r\n`],
    ['two Origin lines, the allowed one first', `Origin: ${ORIGIN}\r\nOrigin: https://evil.example\r\n`],
    ['the same allowed Origin twice', `Origin: ${ORIGIN}\r\nOrigin: ${ORIGIN}\r\n`],
    ['a comma list', `Origin: ${ORIGIN}, https://evil.example\r\n`],
    ['a comma list without a space', `Origin: ${ORIGIN},https://evil.example\r\n`],
    ['a space-separated list (an origin list of the old RFC 6454)', `Origin: ${ORIGIN} https://evil.example\r\n`],
    ['a tab inside the value', 'Origin: https://app.example.com\thttps://evil.example\r\n'],
    ['a trailing dot on the host', 'Origin: https://app.example.com.\r\n'],
    ['upper case', 'Origin: HTTPS://APP.EXAMPLE.COM\r\n'],
    ['an explicit default port', 'Origin: https://app.example.com:443\r\n'],
    ['a trailing slash', 'Origin: https://app.example.com/\r\n'],
    ['userinfo', 'Origin: https://evil.example@app.example.com\r\n'],
    ['a suffix that only ends like an allowed one', 'Origin: https://evilexample.com\r\n'],
    ['a wildcard match with a path', 'Origin: https://a.example.com/x\r\n'],
    ['latin-1 bytes', 'Origin: https://app.ex\u00e4mple.com\r\n'],
    ['full-width letters (UTF-8 bytes)', `Origin: ${Buffer.from('https://ａpp.example.com', 'utf8').toString('latin1')}\r\n`],
    ['8 KiB of Origin', `Origin: https://${'a'.repeat(8 * 1024)}.evil.example\r\n`],
    ['8 KiB of Origin under an allowed wildcard', `Origin: https://${'a.'.repeat(4 * 1024)}example.com\r\n`],
    ['the literal null (not listed)', 'Origin: null\r\n'],
    ['an empty Origin', 'Origin: \r\n']
  ]
  for (const [name, lines] of cases) {
    for (const method of ['GET', 'OPTIONS']) {
      const res = await sendRaw(gw.url, req(lines, method))
      const acao = headerValues(res, 'access-control-allow-origin')
      if (name === '8 KiB of Origin under an allowed wildcard') {
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
