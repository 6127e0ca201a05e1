// The browser suite's allowed and refused origin cases with corsgate on https: Chromium
// negotiates HTTP/2 by ALPN (asserted from the page's own resource timing and from the
// gateway's log), gets the same CORS answers, and opens wss:// websockets over HTTP/1.1 on
// the same port. The test CA is made at test time; Chromium trusts the server key by its
// SPKI hash.
import t from 'tap'
import type { Page } from 'playwright-core'
import { chromiumReady, startScenario, websocketIn, type Scenario } from '../helpers/browser.js'
import { makeTestCa } from '../helpers/tls.js'

/** The protocol the page's last request to `url` went over, from its resource timing. */
async function protocolOf (page: Page, url: string): Promise<string | undefined> {
  return await page.evaluate(`(performance.getEntriesByName(${JSON.stringify(url)}).at(-1) || {}).nextHopProtocol`) as string | undefined
}

function logLines (s: Scenario, path: string): Array<Record<string, unknown>> {
  return s.gw.logs.filter((l) => l.msg === 'request' && l.path === path)
}

if (chromiumReady()) {
  t.test('Chromium over https', async (t) => {
    const ca = makeTestCa()
    t.teardown(() => { ca.remove() })
    const cert = ca.issue('browser')
    const s = await startScenario({ tls: { certFile: cert.certFile, keyFile: cert.keyFile, spki: ca.spki(cert.cert) } })
    t.teardown(s.close)
    const gw = s.gw.url
    t.match(gw, /^https:\/\/127\.0\.0\.1:\d+$/)
    const allowed = await s.openPage(s.allowed)
    const refused = await s.openPage(s.refused)

    t.test('allowed origin: a simple GET is readable, over h2', async (t) => {
      const url = `${gw}/api/tls/simple`
      const res = await s.fetchIn(allowed, url)
      if ('error' in res) return t.fail(`fetch rejected: ${res.error}`)
      t.equal(res.status, 200)
      t.match(JSON.parse(res.body), { method: 'GET', url: '/api/tls/simple' })
      t.equal(await protocolOf(allowed, url), 'h2', 'the page\'s resource timing says h2')
      t.match(logLines(s, '/api/tls/simple'), [{ httpVersion: '2.0', decision: 'allowed', status: 200 }], 'and so does the gateway\'s log')
    })

    t.test('allowed origin: a preflighted PUT, preflight and request both over h2', async (t) => {
      const res = await s.fetchIn(allowed, `${gw}/api/tls/items/1`, {
        method: 'PUT',
        headers: { Authorization: 'Bearer t0ken', 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'widget' })
      })
      if ('error' in res) return t.fail(`fetch rejected: ${res.error}`)
      t.equal(res.status, 200)
      const lines = logLines(s, '/api/tls/items/1')
      t.match(lines, [{ kind: 'preflight', httpVersion: '2.0', status: 204 }, { kind: 'actual', method: 'PUT', httpVersion: '2.0', status: 200 }])
      const seen = s.upstream.seen.filter((r) => r.url === '/api/tls/items/1')
      t.same(seen.map((r) => r.method), ['PUT'], 'only the PUT reached the upstream')
      t.equal(seen[0]?.body.toString(), '{"name":"widget"}', 'the body was streamed through')
    })

    t.test('allowed origin: an unlisted request header is blocked by the browser', async (t) => {
      const res = await s.fetchIn(allowed, `${gw}/api/tls/unlisted`, { headers: { 'X-Unlisted': '1' } })
      t.match(res, { error: /TypeError/ })
      t.equal(s.preflights('/api/tls/unlisted'), 1)
      t.same(s.upstream.seen.filter((r) => r.url === '/api/tls/unlisted'), [])
    })

    t.test('allowed origin: exposed headers readable, others not', async (t) => {
      const res = await s.fetchIn(allowed, `${gw}/api/tls/headers`, {}, ['x-exposed', 'x-hidden'])
      if ('error' in res) return t.fail(`fetch rejected: ${res.error}`)
      t.equal(res.headers['x-exposed'], 'visible')
      t.equal(res.headers['x-hidden'], null)
    })

    t.test('allowed origin: corsgate\'s 502 is readable (CORS headers on its own error)', async (t) => {
      const res = await s.fetchIn(allowed, `${gw}/dead/tls`)
      if ('error' in res) return t.fail(`fetch rejected: ${res.error}`)
      t.equal(res.status, 502)
      t.match(JSON.parse(res.body), { error: 'bad_gateway', statusCode: 502 })
    })

    t.test('allowed origin: a wss:// websocket opens over HTTP/1.1 on the same port', async (t) => {
      const res = await websocketIn(allowed, `${gw.replace(/^https/, 'wss')}/ws/echo`)
      t.match(res, { opened: true, message: /^echo:ping/ })
      t.match(s.gw.logs.filter((l) => l.kind === 'websocket' && l.decision === 'allowed').at(-1), { httpVersion: '1.1', status: 101 })
    })

    t.test('refused origin: requests fail in the page and never reach the upstream', async (t) => {
      const cases: Array<[string, string, Record<string, unknown>]> = [
        ['simple GET', '/api/tls-refused/simple', {}],
        ['simple POST', '/api/tls-refused/form', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'a=1' }],
        ['preflighted PUT', '/api/tls-refused/items/1', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{}' }]
      ]
      for (const [name, path, init] of cases) {
        const res = await s.fetchIn(refused, `${gw}${path}`, init)
        t.match(res, { error: /TypeError/ }, `${name}: fetch rejects`)
        t.ok(logLines(s, path).length > 0 && logLines(s, path).every((l) => l.decision === 'denied' && l.httpVersion === '2.0'), `${name}: denied over h2`)
      }
      t.same(s.upstream.seen.filter((r) => r.url.startsWith('/api/tls-refused')), [], 'the upstream saw none of them')
    })

    t.test('refused origin: a wss:// websocket never opens', async (t) => {
      const res = await websocketIn(refused, `${gw.replace(/^https/, 'wss')}/ws/echo`)
      t.same(res, { opened: false, code: 1006 })
      t.match(s.gw.logs.filter((l) => l.kind === 'websocket' && l.decision === 'denied').at(-1), { status: 403, httpVersion: '1.1' })
    })
  })
}
