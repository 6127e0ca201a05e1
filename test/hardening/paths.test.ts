// Paths cannot dodge the policy: whatever spelling of a path a client sends, corsgate either
// judges it by the route the upstream will act on, or refuses it (400). Raw sockets, because
// fetch() would normalise `/./` and `/../` before sending.
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { headerValues, sendRaw } from '../helpers/raw-http.js'
import { startUpstream } from '../helpers/upstream.js'

const EVIL = 'https://evil.example'

function get (path: string, origin = EVIL): string {
  return `GET ${path} HTTP/1.1\r\nHost: gw\r\nOrigin: ${origin}\r\nConnection: close\r\n\r\n`
}

t.test('a public prefix with a "*" policy cannot be used to reach the strict rest', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    policies: {
      open: { origins: ['*'], credentials: false },
      strict: { origins: ['https://app.example.com'] }
    },
    routes: [
      { path: '/public/', upstream: upstream.url, policy: 'open' },
      { path: '/', upstream: upstream.url, policy: 'strict' }
    ]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  const open = await sendRaw(gw.url, get('/public/logo.png'))
  t.equal(open.status, 200, 'the public prefix itself is open to any origin')
  t.same(headerValues(open, 'access-control-allow-origin'), ['*'])

  const dodges = [
    '/public/../admin', '/public/./../admin', '/public/..', '/public/%2e%2e/admin', '/public/%2E%2E/admin',
    '/public/.%2e/admin', '/public/..%2fadmin', '/public/..%2Fadmin', '/public%2f..%2fadmin',
    '/public/..\\admin', '/public/%5c..%5cadmin', '/public/..;/admin', '/public/..;x=1/admin',
    '/public//../admin', '/public/.././admin',
    // `..` and characters some upstreams strip (Jetty's CVE-2021-34429, Windows trimming spaces).
    '/public/..%00/admin', '/public/..%20/admin', '/public/..%3b/admin', '/public/..%09/admin', '/public/..%23/admin',
    '/public/..%2500/admin', '/public/..%e2%80%8b/admin',
    // Scheme-relative to a WHATWG URL parser: host `public`, path `/../admin`.
    '//public/../admin', '//public/admin'
  ]
  for (const path of dodges) {
    const res = await sendRaw(gw.url, get(path))
    // A 400 for a path under /public/ carries that route's `*`, as every error corsgate makes
    // does (SPEC "Actual requests"): harmless, the answer holds no data and no credentials.
    t.equal(res.status, 400, `${path}: refused`)
    t.notOk(headerValues(res, 'access-control-allow-origin').includes(EVIL), `${path}: origin not reflected`)
  }
  const seen = upstream.seen.map((r) => r.url)
  t.same(seen, ['/public/logo.png'], 'only the honest request reached the upstream')
})

t.test('a strict prefix cannot be dodged into a lax catch-all', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({
    policies: {
      lax: { origins: ['*'], credentials: false },
      admin: { origins: ['https://admin.example.com'] }
    },
    routes: [
      { path: '/admin/', upstream: upstream.url, policy: 'admin' },
      { path: '/', upstream: upstream.url, policy: 'lax' }
    ]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })

  // Each of these names /admin/users to a backend that merges slashes (nginx, PHP, Laravel)
  // or decodes unreserved characters (every framework).
  const spellings = ['//admin/users', '///admin/users', '/admin//users', '/./admin/users', '/x/../admin/users',
    '/%61dmin/users', '/adm%69n/users', '/%61%64%6d%69%6e/users', '/%2fadmin/users', '/%2e/admin/users']
  for (const path of spellings) {
    const res = await sendRaw(gw.url, get(path))
    // 403: judged by the admin policy. 400: refused as ambiguous (it carries the catch-all's
    // `*`, as every error does, but holds no data and never reached the upstream).
    t.ok(res.status === 400 || res.status === 403, `${path}: judged by the admin policy or refused (${res.status})`)
    t.notOk(headerValues(res, 'access-control-allow-origin').includes(EVIL), `${path}: origin not reflected`)
  }
  t.same(upstream.seen, [], 'none of them reached the upstream')

  // Merged slashes choose the route; the upstream still gets the path as sent.
  const admin = await sendRaw(gw.url, get('/admin//users', 'https://admin.example.com'))
  t.equal(admin.status, 200, 'the admin origin is served on a doubled slash: the same route, not a refusal')
  t.same(headerValues(admin, 'access-control-allow-origin'), ['https://admin.example.com'])
  t.equal(upstream.seen[0]?.url, '/admin//users', 'the path is forwarded as sent')
  // A leading `//` may read as a scheme-relative URL, so the forwarding layer may refuse it
  // (400) or forward it; either way the admin route was chosen: its headers are on the answer.
  const leading = await sendRaw(gw.url, get('//admin/users', 'https://admin.example.com'))
  t.ok(leading.status === 400 || leading.status === 200, `leading //: ${leading.status}`)
  t.same(headerValues(leading, 'access-control-allow-origin'), ['https://admin.example.com'], 'judged by the admin route')
})
