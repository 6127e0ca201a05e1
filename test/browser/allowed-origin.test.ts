// What a page on an allowed origin can do through corsgate, as Chromium itself enforces it:
// simple and credentialed requests, preflighted writes, exposed headers, readable errors,
// and the browser's preflight cache.
import t from 'tap'
import { chromiumReady, startScenario } from '../helpers/browser.js'

if (chromiumReady()) {
  t.test('from an allowed origin', async (t) => {
    const s = await startScenario()
    t.teardown(s.close)
    const page = await s.openPage(s.allowed)
    const gw = s.gw.url

    t.test('a simple GET is readable', async (t) => {
      const res = await s.fetchIn(page, `${gw}/api/simple`)
      if ('error' in res) return t.fail(`fetch rejected: ${res.error}`)
      t.equal(res.status, 200)
      t.match(JSON.parse(res.body), { method: 'GET', url: '/api/simple' })
      t.equal(s.upstream.seen.find((r) => r.url === '/api/simple')?.headers.origin, s.allowed.origin, 'the upstream got the page\'s Origin')
    })

    t.test('a credentialed GET: a cookie set through the gateway comes back', async (t) => {
      const login = await s.fetchIn(page, `${gw}/api/login`, { credentials: 'include' })
      t.notOk('error' in login, 'the login response is readable')
      const who = await s.fetchIn(page, `${gw}/api/whoami`, { credentials: 'include' })
      if ('error' in who) return t.fail(`fetch rejected: ${who.error}`)
      t.equal(JSON.parse(who.body).cookie, 'sid=s3cret', 'the browser stored the cookie and sent it back')
      t.equal(s.upstream.seen.find((r) => r.url === '/api/whoami')?.headers.cookie, 'sid=s3cret', 'the upstream saw it')
    })

    t.test('a preflighted PUT with Authorization and JSON', async (t) => {
      const res = await s.fetchIn(page, `${gw}/api/items/1`, {
        method: 'PUT',
        headers: { Authorization: 'Bearer t0ken', 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'widget' })
      })
      if ('error' in res) return t.fail(`fetch rejected: ${res.error}`)
      t.equal(res.status, 200)
      t.equal(s.preflights('/api/items/1'), 1, 'the browser sent a preflight and corsgate answered it')
      const seen = s.upstream.seen.filter((r) => r.url === '/api/items/1')
      t.same(seen.map((r) => r.method), ['PUT'], 'only the PUT reached the upstream, never the OPTIONS')
      t.equal(seen[0]?.headers.authorization, 'Bearer t0ken')
      t.equal(seen[0]?.body.toString(), '{"name":"widget"}')
    })

    t.test('an unlisted request header: the browser blocks the call', async (t) => {
      const res = await s.fetchIn(page, `${gw}/api/unlisted`, { headers: { 'X-Unlisted': '1' } })
      t.match(res, { error: /TypeError/ }, 'fetch rejects')
      t.equal(s.preflights('/api/unlisted'), 1, 'the preflight was asked and denied')
      t.same(s.upstream.seen.filter((r) => r.url === '/api/unlisted'), [], 'the upstream saw nothing')
    })

    t.test('exposed response headers are readable from script, others are not', async (t) => {
      const res = await s.fetchIn(page, `${gw}/api/headers`, {}, ['x-exposed', 'x-hidden', 'content-type'])
      if ('error' in res) return t.fail(`fetch rejected: ${res.error}`)
      t.equal(res.headers['x-exposed'], 'visible', 'X-Exposed is in the policy\'s exposeHeaders')
      t.equal(res.headers['x-hidden'], null, 'X-Hidden is not')
      t.equal(res.headers['content-type'], 'application/json', 'safelisted response headers need no listing')
    })

    t.test('a 502 from a dead upstream is readable by the page (CORS on errors)', async (t) => {
      const res = await s.fetchIn(page, `${gw}/dead/x`)
      if ('error' in res) return t.fail(`fetch rejected, the page would see a CORS error instead of the 502: ${res.error}`)
      t.equal(res.status, 502)
      t.match(JSON.parse(res.body), { statusCode: 502, code: 'CORSGATE_UPSTREAM_UNAVAILABLE' })
    })

    t.test('the preflight cache: a second identical call within maxAge sends no preflight', async (t) => {
      const init = { method: 'PUT', headers: { Authorization: 'Bearer t0ken', 'Content-Type': 'application/json' }, body: '{}' }
      const first = await s.fetchIn(page, `${gw}/api/cached`, init)
      t.notOk('error' in first)
      t.equal(s.preflights('/api/cached'), 1, 'the first call was preflighted')
      const second = await s.fetchIn(page, `${gw}/api/cached`, init)
      t.notOk('error' in second)
      t.equal(s.preflights('/api/cached'), 1, 'the second used the cached preflight (Access-Control-Max-Age: 600)')
      t.equal(s.upstream.seen.filter((r) => r.url === '/api/cached').length, 2, 'both PUTs were forwarded')
    })
  })
}
