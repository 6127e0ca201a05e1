// A page on an origin the policy refuses (http://localhost:P, a different origin and site
// from the allowed http://127.0.0.1:P): every call fails in the browser, and the upstream
// sees none of them — corsgate refuses before forwarding, it does not rely on the browser.
import t from 'tap'
import { chromiumReady, startScenario } from '../helpers/browser.js'

if (chromiumReady()) {
  t.test('from a refused origin', async (t) => {
    const s = await startScenario()
    t.teardown(s.close)
    const page = await s.openPage(s.refused)
    const gw = s.gw.url

    const calls: Array<[string, string, Record<string, unknown>]> = [
      ['simple GET', '/api/refused/simple', {}],
      ['credentialed GET', '/api/refused/login', { credentials: 'include' }],
      ['simple POST (no preflight)', '/api/refused/form', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'a=1' }],
      ['preflighted PUT with Authorization and JSON', '/api/refused/items/1',
        { method: 'PUT', headers: { Authorization: 'Bearer t0ken', 'Content-Type': 'application/json' }, body: '{}' }],
      ['an unlisted header', '/api/refused/unlisted', { headers: { 'X-Unlisted': '1' } }],
      ['a dead upstream', '/dead/refused', {}]
    ]
    for (const [name, path, init] of calls) {
      const res = await s.fetchIn(page, `${gw}${path}`, init)
      t.match(res, { error: /TypeError/ }, `${name}: fetch rejects with TypeError`)
    }
    t.same(s.upstream.seen.filter((r) => r.url.startsWith('/api/refused')), [], 'the upstream saw none of them')
    const denied = s.gw.logs.filter((l) => typeof l.path === 'string' && (l.path.startsWith('/api/refused') || l.path === '/dead/refused'))
    t.ok(denied.length >= calls.length, 'corsgate logged each of them')
    t.ok(denied.every((l) => l.decision === 'denied' && l.origin === s.refused.origin), 'every one denied, for the refused origin')
    // The simple POST is the one a browser sends without asking: only corsgate stopped it.
    t.match(denied.find((l) => l.path === '/api/refused/form'), { status: 403, reason: 'origin_not_allowed' })
  })
}
