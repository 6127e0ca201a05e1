// OriginMatcherBuilder: adding entries a few at a time gives the same matcher as
// `new OriginMatcher(entries)`, and a built matcher can no longer change.
import t from 'tap'
import { OriginMatcher, OriginMatcherBuilder, type MatcherEntry } from '../../src/policy/matcher.js'
import { parseOriginPattern } from '../../src/policy/origin-pattern.js'

const NOW = 1_700_000_000_000

function entry (text: string, source = 'file', expiresAt?: number): MatcherEntry {
  const e: MatcherEntry = { pattern: parseOriginPattern(text), source }
  if (expiresAt !== undefined) e.expiresAt = expiresAt
  return e
}

const list: MatcherEntry[] = [
  entry('https://app.example.com'),
  entry('https://app.example.com', 'redis-expiring', NOW + 1000),
  entry('https://pr-1.example.org', 'redis-expiring', NOW + 500),
  entry('https://pr-1.example.org', 'redis-expiring', NOW + 2000),
  entry('https://*.example.com'),
  entry('https://*.tenant.example.net:8443', 'redis'),
  entry('http://dev.example.net:*', 'redis'),
  entry('re:^https://[a-z]+\\.review\\.example\\.io$'),
  entry('null'),
  entry('*', 'env')
]

const origins = [
  'https://app.example.com', 'https://pr-1.example.org', 'https://a.b.example.com', 'https://example.com',
  'https://x.tenant.example.net:8443', 'https://x.tenant.example.net', 'http://dev.example.net:3000',
  'https://abc.review.example.io', 'null', 'https://nowhere.test'
]

const describe = (e: MatcherEntry | undefined): string => e === undefined ? '-' : `${e.pattern.text} ${e.source} ${e.expiresAt ?? ''}`

t.test('same matcher as the constructor, entry by entry', async (t) => {
  const whole = new OriginMatcher(list)
  const b = new OriginMatcherBuilder()
  for (const e of list) b.add(e)
  t.equal(b.size, list.length)
  const built = b.build()
  t.ok(built instanceof OriginMatcher)
  t.equal(built.size, whole.size)
  t.equal(built.any, whole.any)
  t.equal(built.nextExpiry, whole.nextExpiry)
  t.equal(built.nextExpiry, NOW + 500)
  t.same([...built.entries()].map(describe), [...whole.entries()].map(describe), 'same entries in the same order')
  for (const now of [NOW, NOW + 600, NOW + 1500, NOW + 5000]) {
    for (const o of origins) t.equal(describe(built.match(o, now)), describe(whole.match(o, now)), `${o} at +${now - NOW}`)
  }
})

t.test('an empty builder builds an empty matcher', async (t) => {
  const m = new OriginMatcherBuilder().build()
  t.equal(m.size, 0)
  t.equal(m.match('https://app.example.com', NOW), undefined)
  t.same([...m.entries()], [])
})

t.test('sealed once built: no add, no second build, the matcher unchanged', async (t) => {
  const b = new OriginMatcherBuilder().add(entry('https://app.example.com'))
  const m = b.build()
  t.throws(() => b.add(entry('https://late.example.com')), /after build/)
  t.throws(() => b.build(), /twice/)
  t.equal(m.size, 1)
  t.equal(m.match('https://late.example.com', NOW), undefined)
})
