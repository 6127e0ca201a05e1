// The per-policy table every request is counted in (src/observe/origin-table.ts): one row per
// serialized origin, a row for no Origin, `other` past maxOrigins, `invalid` for anything no
// browser sends (never kept verbatim), routes bounded, old rows swept.
import t from 'tap'
import { observedReport, addLocalRows, type ObservedCounts } from '../../src/observe/observed-report.js'
import { INVALID, MAX_ROUTES, OriginObserver, isSerializedOrigin } from '../../src/observe/origin-table.js'

function observer (maxOrigins = 3, now = () => 1_700_000_000_000): OriginObserver {
  return new OriginObserver({ maxOrigins, retentionMs: 60_000, now })
}

function report (o: OriginObserver, policy = 'default') {
  const counts: ObservedCounts = new Map()
  addLocalRows(counts, o.table(policy)!, false, 0)
  return observedReport(policy, '24h', counts)
}

t.test('a known origin has one row; counts by outcome and reason; no Origin and "null" are rows of their own', async (t) => {
  const o = observer()
  o.record('default', 'https://app.example.com', 'allowed', 'origin_allowed', '/api/')
  o.record('default', 'https://app.example.com', 'allowed', 'origin_allowed', '/api/')
  o.record('default', 'https://app.example.com', 'denied', 'method_not_allowed', '/')
  o.record('default', undefined, 'no_origin', 'no_origin', '/')
  o.record('default', 'null', 'denied', 'origin_not_allowed', '/')
  const table = o.table('default')!
  t.equal(table.rows.size, 2, 'app.example.com and "null"')
  const row = table.rows.get('https://app.example.com')!
  o.record('default', 'https://app.example.com', 'allowed', 'origin_allowed', '/api/')
  t.equal(table.rows.get('https://app.example.com'), row, 'the same row object: nothing new per request')
  const r = report(o)
  t.same(r.origins.map((x) => [x.origin, x.requests]), [['https://app.example.com', 4], [null, 1], ['null', 1]])
  t.same(r.origins[0], {
    origin: 'https://app.example.com',
    requests: 4,
    outcomes: { allowed: 3, denied: 1, would_deny: 0, same_origin: 0 },
    reasons: { origin_allowed: 3, method_not_allowed: 1 },
    routes: ['/', '/api/'],
    firstSeen: '2023-11-14T22:13:20.000Z',
    lastSeen: '2023-11-14T22:13:20.000Z'
  })
  t.same(r.origins[1]!.outcomes, { allowed: 1, denied: 0, would_deny: 0, same_origin: 0 }, 'an allowed request without Origin counts as allowed')
  t.same(r.origins[1]!.reasons, { no_origin: 1 })
})

t.test('anything that is not a serialized origin lands in invalid, never kept verbatim', async (t) => {
  const o = observer(100)
  const garbage = [
    'https://a.example.com, https://b.example.com', // a list
    'https://APP.example.com', // upper case
    'https://app.example.com:443', // default port
    'https://app.example.com/', // a path
    'https://user@app.example.com', // userinfo
    'https://app.example.com\r\nx: y', // control bytes
    'https://app\u0000.example.com',
    `https://${'a'.repeat(300)}.example.com`, // over 300 bytes
    'https://bücher.example', // non-ASCII
    'javascript:alert(1)',
    '',
    'garbage'
  ]
  for (const g of garbage) {
    t.notOk(isSerializedOrigin(g), JSON.stringify(g.slice(0, 40)))
    o.record('default', g, 'denied', 'origin_not_allowed', '/')
  }
  const table = o.table('default')!
  t.equal(table.rows.size, 0, 'no row made for any of them')
  t.equal(table.invalid.requests, garbage.length)
  const r = report(o)
  t.equal(r.invalid, garbage.length)
  t.same(r.origins, [])
  t.notOk(JSON.stringify(r).includes('APP'), 'not in the report either')
  t.ok(isSerializedOrigin('http://localhost:5173') && isSerializedOrigin('https://[::1]:8443') && isSerializedOrigin('null'))
})

t.test('past maxOrigins new origins count in other; known ones keep their rows', async (t) => {
  const o = observer(3)
  for (let i = 0; i < 10; i++) o.record('default', `https://o${i}.example.com`, 'denied', 'origin_not_allowed', '/')
  o.record('default', 'https://o0.example.com', 'denied', 'origin_not_allowed', '/')
  const table = o.table('default')!
  t.equal(table.rows.size, 3)
  t.equal(table.other.requests, 7)
  t.equal(table.rows.get('https://o0.example.com')!.requests, 2, 'a known origin still counts in its row')
  t.same([...o.dropped()], [{ policy: 'default', row: 'other', requests: 7 }, { policy: 'default', row: 'invalid', requests: 0 }])
  t.equal(report(o).other, 7)
  o.record('api', 'https://o9.example.com', 'allowed', 'origin_allowed', '/api/')
  t.equal(o.table('api')!.rows.size, 1, 'the bound is per policy')
})

t.test('routes per origin are bounded', async (t) => {
  const o = observer()
  for (let i = 0; i < MAX_ROUTES + 10; i++) o.record('default', 'https://app.example.com', 'allowed', 'origin_allowed', `/r${i}/`)
  t.equal(o.table('default')!.rows.get('https://app.example.com')!.routes.length, MAX_ROUTES)
})

t.test('sweep forgets rows past the retention once flushed (or when nothing flushes)', async (t) => {
  let now = 1_000_000
  const o = observer(10, () => now)
  o.record('default', 'https://old.example.com', 'allowed', 'origin_allowed', '/')
  now += 30_000
  o.record('default', 'https://new.example.com', 'allowed', 'origin_allowed', '/')
  now += 40_000 // old: 70 s ago, new: 40 s ago; retention 60 s
  t.equal(o.sweep(false), 0, 'an unflushed row is kept (its counts still have to reach Redis)')
  t.equal(o.sweep(true), 1)
  t.same([...o.table('default')!.rows.keys()], ['https://new.example.com'])
  t.equal(INVALID, '(invalid)')
})
