// Property-based abuse: fast-check drives random methods, paths, origins and headers through
// the full gateway (raw bytes over a socket) for a bounded run. Nothing crashes, and every
// response keeps the CORS invariants:
//  - at most one Access-Control-Allow-Origin, byte-equal to the Origin sent, or `*` only
//    where the policy is `*` and then never with credentials;
//  - Access-Control-Allow-Credentials absent or exactly `true`;
//  - Vary contains Origin on every route whose policy is not `*`.
import fc from 'fast-check'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { headerValues, sendRaw } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'

const ALLOWED = ['https://app.example.com', 'http://localhost:5173']

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/)
// Field values Node's parser accepts: visible ASCII, space, tab and obs-text (latin-1).
const fieldValue = fc.array(fc.oneof(
  fc.integer({ min: 0x21, max: 0x7e }),
  fc.constantFrom(0x20, 0x09),
  fc.integer({ min: 0x80, max: 0xff })
), { maxLength: 40 }).map((codes) => String.fromCharCode(...codes).trim())

const origin = fc.oneof(
  fc.constantFrom(...ALLOWED, 'null', '', 'https://evil.example', 'https://app.example.com.evil.example'),
  fc.stringMatching(/^[a-z0-9-]{1,10}$/).map((l) => `https://${l}.example.com`), // the wildcard
  fc.tuple(fc.constantFrom(...ALLOWED), fc.constantFrom('/', ':443', ', https://evil.example', ' ', '.', '\t', '%00', '@evil.example'))
    .map(([o, s]) => o + s),
  fc.constantFrom(...ALLOWED).map((o) => o.toUpperCase()),
  fieldValue
)

const extraHeader = fc.tuple(
  fc.oneof(token.filter((n) => !/^(host|content-length|transfer-encoding|connection|upgrade|expect|te)$/i.test(n)),
    fc.constantFrom('Access-Control-Request-Method', 'Access-Control-Request-Headers', 'Access-Control-Request-Private-Network',
      'X-Forwarded-Host', 'X-Forwarded-Proto', 'Cookie', 'Authorization', 'Vary', 'Access-Control-Allow-Origin')),
  fc.oneof(fieldValue, fc.constantFrom('GET', 'PUT', 'DELETE', 'content-type,authorization', 'x-evil', '*', 'true'))
)

const request = fc.record({
  method: fc.oneof(fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'), token.map((m) => m.toUpperCase())),
  prefix: fc.constantFrom('/strict/', '/open/', '/report/', '/'),
  rest: fc.stringMatching(/^[a-zA-Z0-9._~%/-]{0,20}$/),
  query: fc.option(fc.stringMatching(/^[a-zA-Z0-9=&%._-]{0,15}$/), { nil: undefined }),
  origin: fc.option(origin, { nil: undefined, freq: 5 }),
  headers: fc.array(extraHeader, { maxLength: 8 })
})

t.test('random requests keep the CORS invariants and never crash the gateway', async (t) => {
  const upstream = await startUpstream((req, res) => {
    // An upstream that tries to speak CORS itself, to check it never gets through.
    res.setHeader('access-control-allow-origin', req.headers.origin ?? '*')
    res.setHeader('access-control-allow-credentials', 'yes')
    res.setHeader('vary', 'Accept-Encoding')
    res.end('ok')
  })
  const gw = await startTestGateway({
    policies: {
      default: { origins: ['https://app.example.com', 'https://*.example.com', 'http://localhost:*'], maxAge: 600 },
      open: { origins: ['*'], credentials: false },
      report: { origins: ['https://app.example.com'], mode: 'report-only', exposeHeaders: ['X-Total'] }
    },
    routes: [
      { path: '/strict/', upstream: upstream.url, policy: 'default' },
      { path: '/open/', upstream: upstream.url, policy: 'open' },
      { path: '/report/', upstream: upstream.url, policy: 'report' },
      { path: '/', upstream: upstream.url, policy: 'default' }
    ]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  let runs = 0
  await fc.assert(fc.asyncProperty(request, async (r) => {
    runs++
    const target = `${r.prefix}${r.rest}${r.query === undefined ? '' : `?${r.query}`}`
    const lines = [`${r.method} ${target} HTTP/1.1`, 'Host: gw']
    if (r.origin !== undefined) lines.push(`Origin: ${r.origin}`)
    for (const [name, value] of r.headers) lines.push(`${name}: ${value}`)
    lines.push('Connection: close')
    const res = await sendRaw(gw.url, lines.join('\r\n') + '\r\n\r\n')
    const where = `${r.method} ${target} Origin=${JSON.stringify(r.origin)} → ${res.status}`

    if (res.status === 0) throw new Error(`no answer: ${where}`)
    if (res.status >= 500) throw new Error(`server error: ${where}\n${res.body}`)
    const acao = headerValues(res, 'access-control-allow-origin')
    const acac = headerValues(res, 'access-control-allow-credentials')
    if (acao.length > 1) throw new Error(`two allow-origin headers: ${where}`)
    if (acao.length === 1) {
      if (acao[0] === '*') {
        if (r.prefix !== '/open/') throw new Error(`"*" outside the "*" policy: ${where}`)
        if (acac.length > 0) throw new Error(`"*" with credentials: ${where}`)
      } else if (acao[0] !== r.origin?.trim()) {
        throw new Error(`allow-origin ${JSON.stringify(acao[0])} is not the Origin sent: ${where}`)
      } else if (r.prefix !== '/report/' && !/^https?:\/\/[a-z0-9.-]+(:[0-9]+)?$/.test(acao[0]!)) {
        // report-only serves would-be denials as if allowed (SPEC "Modes"), so only enforcing
        // policies must never allow a non-canonical origin.
        throw new Error(`a non-canonical origin was allowed: ${where}`)
      }
    }
    if (acac.length > 1 || (acac.length === 1 && acac[0] !== 'true')) throw new Error(`bad credentials header ${JSON.stringify(acac)}: ${where}`)
    if (r.prefix !== '/open/' && !/(^|,\s*)Origin(\s*,|$)/i.test(headerValues(res, 'vary').join(', '))) {
      throw new Error(`no Vary: Origin: ${where} vary=${JSON.stringify(headerValues(res, 'vary'))}`)
    }
  }), { numRuns: 300, interruptAfterTimeLimit: 90_000 })

  t.equal(runs >= 300, true, `${runs} requests checked`)
  t.same(gw.logs.filter((l) => (l.level as number) >= 50), [], 'no unexpected-error log lines')
  const ok = await fetch(`${gw.url}/strict/ping`, { headers: { origin: 'https://app.example.com' } })
  t.equal(ok.status, 200, 'the gateway still serves an ordinary request')
})
