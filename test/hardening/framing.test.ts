// Request smuggling and malformed framing: refused with 400 by the gateway's parser and never
// forwarded. The bytes go over a raw socket so no client library can tidy them up first.
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { headerValues, sendRaw } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'

// Each case is a complete request as an attacker would write it. A front proxy that reads the
// framing differently from the upstream could hide a second request in the body.
const cases: Array<[string, string]> = [
  ['Content-Length together with Transfer-Encoding',
    'POST /api HTTP/1.1\r\nHost: gw\r\nOrigin: ' + ORIGIN + '\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: gw\r\n\r\n'],
  ['two differing Content-Length headers',
    'POST /api HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabcGET /admin HTTP/1.1\r\nHost: gw\r\n\r\n'],
  ['Content-Length with a comma list',
    'POST /api HTTP/1.1\r\nHost: gw\r\nContent-Length: 3, 40\r\n\r\nabc'],
  ['obs-fold (a header continued on the next line)',
    'GET /api HTTP/1.1\r\nHost: gw\r\nOrigin: https://evil.example\r\n ' + ORIGIN + '\r\n\r\n'],
  ['obs-fold hiding Transfer-Encoding',
    'POST /api HTTP/1.1\r\nHost: gw\r\nX-Pad: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc'],
  ['bare LF line endings',
    'GET /api HTTP/1.1\nHost: gw\nOrigin: ' + ORIGIN + '\n\n'],
  ['bare LF inside the header block',
    'GET /api HTTP/1.1\r\nHost: gw\nX-Smuggle: 1\r\n\r\n'],
  ['bare CR inside the header block',
    'GET /api HTTP/1.1\r\nHost: gw\rX-Smuggle: 1\r\n\r\n'],
  ['space before the colon',
    'POST /api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc'],
  ['tab before the colon',
    'GET /api HTTP/1.1\r\nHost: gw\r\nOrigin\t: ' + ORIGIN + '\r\n\r\n'],
  ['an unknown transfer coding',
    'POST /api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
  ['Transfer-Encoding without chunked last',
    'POST /api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\n\r\nabc'],
  ['a non-hex chunk size',
    'POST /api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
  ['a negative chunk size',
    'POST /api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n'],
  ['a chunk size that overflows 64 bits',
    'POST /api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nabc\r\n0\r\n\r\n'],
  ['a chunk longer than its size',
    'POST /api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n'],
  ['a chunk size with a space before the CRLF',
    'POST /api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n'],
  ['a chunk extension with a bare LF',
    'POST /api HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n'],
  ['a request line with a bare LF and no version',
    'GET /api\n\n'],
  ['two Host headers',
    'GET /api HTTP/1.1\r\nHost: gw\r\nHost: other.example\r\nConnection: close\r\n\r\n'],
  ['no Host header',
    'GET /api HTTP/1.1\r\nOrigin: ' + ORIGIN + '\r\n\r\n'],
  ['a NUL byte in a header value',
    'GET /api HTTP/1.1\r\nHost: gw\r\nX-A: a\u0000b\r\n\r\n'],
  ['a control character in the request target',
    'GET /api\u0001x HTTP/1.1\r\nHost: gw\r\n\r\n']
]

t.test('malformed framing is refused with 400 and never forwarded', async (t) => {
  let upstreamRequests = 0
  const upstream = await startUpstream()
  upstream.server.on('request', () => { upstreamRequests++ })
  const gw = await startTestGateway({
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/', upstream: upstream.url }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  for (const [name, bytes] of cases) {
    const res = await sendRaw(gw.url, bytes)
    t.equal(res.status, 400, `${name}: 400`)
    t.equal(headerValues(res, 'access-control-allow-origin').length, 0, `${name}: no CORS headers`)
    t.notMatch(res.raw, /HTTP\/1\.1 [0-9]{3}[^]*HTTP\/1\.1 [0-9]{3}/, `${name}: exactly one response (nothing smuggled)`)
  }
  t.equal(upstreamRequests, 0, 'the upstream saw none of them, not even request headers')
  t.same(upstream.seen, [])

  const ok = await fetch(`${gw.url}/api`, { headers: { origin: ORIGIN } })
  t.equal(ok.status, 200, 'a well-formed request is served afterwards')
})
