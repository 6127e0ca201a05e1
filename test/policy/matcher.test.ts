// OriginMatcher: exact set lookup, `*.` by label suffix, `:*` by host, `re:` scanned; entries
// that expire; the raw header matched byte for byte.
import t from 'tap'
import { OriginMatcher, type MatcherEntry } from '../../src/policy/matcher.js'
import { parseOriginPattern } from '../../src/policy/origin-pattern.js'

const NOW = 1_700_000_000_000

function entry (text: string, source = 'file', expiresAt?: number): MatcherEntry {
  const e: MatcherEntry = { pattern: parseOriginPattern(text), source }
  if (expiresAt !== undefined) e.expiresAt = expiresAt
  return e
}

function matcher (...patterns: string[]): OriginMatcher {
  return new OriginMatcher(patterns.map((p) => entry(p)))
}

/** The text of the pattern that matched, or undefined. */
function hit (m: OriginMatcher, origin: string, now = NOW): string | undefined {
  return m.match(origin, now)?.pattern.text
}

t.test('exact origins', async (t) => {
  const m = matcher('https://app.example.com', 'HTTP://Admin.Example.com:8080', 'https://app.example.com:443')
  t.equal(hit(m, 'https://app.example.com'), 'https://app.example.com')
  t.equal(hit(m, 'http://admin.example.com:8080'), 'http://admin.example.com:8080', 'the pattern was normalised, the request is canonical')
  t.equal(hit(m, 'HTTP://Admin.Example.com:8080'), undefined, 'a non-canonical Origin never matches')
  t.equal(hit(m, 'https://app.example.com:443'), undefined, 'an explicit default port is not the serialization')
  t.equal(hit(m, 'http://app.example.com'), undefined)
  t.equal(hit(m, 'https://example.com'), undefined)
  t.equal(m.size, 3, 'size counts every entry given')
})

t.test('subdomain wildcards match any depth, never the apex, same scheme and port', async (t) => {
  const m = matcher('https://*.example.com')
  t.equal(hit(m, 'https://a.example.com'), 'https://*.example.com')
  t.equal(hit(m, 'https://a.b.c.example.com'), 'https://*.example.com')
  t.equal(hit(m, 'https://example.com'), undefined, 'never the apex')
  t.equal(hit(m, 'http://a.example.com'), undefined, 'never another scheme')
  t.equal(hit(m, 'https://a.example.com:8443'), undefined, 'never another port')
  t.equal(hit(m, 'https://aexample.com'), undefined, 'a label boundary, not a string suffix')
  t.equal(hit(m, 'https://a.example.com.evil.com'), undefined)
  t.equal(hit(m, 'https://a.example.co'), undefined)

  const ported = matcher('https://*.example.com:8443')
  t.equal(hit(ported, 'https://a.example.com:8443'), 'https://*.example.com:8443')
  t.equal(hit(ported, 'https://a.example.com'), undefined)
  t.equal(hit(ported, 'https://a.example.com:8444'), undefined)

  const anyPort = matcher('https://*.example.com:*')
  t.equal(hit(anyPort, 'https://a.example.com'), 'https://*.example.com:*')
  t.equal(hit(anyPort, 'https://a.example.com:1'), 'https://*.example.com:*')
  t.equal(hit(anyPort, 'https://example.com:8443'), undefined, 'still never the apex')
  t.equal(hit(anyPort, 'https://a.example.com:443'), undefined, 'an explicit default port is not canonical')
})

t.test('the most specific wildcard is found by walking suffixes', async (t) => {
  const m = matcher('https://*.example.com', 'https://*.eu.example.com')
  t.equal(hit(m, 'https://app.eu.example.com'), 'https://*.eu.example.com', 'the longest suffix is tried first')
  t.equal(hit(m, 'https://eu.example.com'), 'https://*.example.com')
})

t.test('any-port patterns', async (t) => {
  const m = matcher('http://localhost:*')
  t.equal(hit(m, 'http://localhost'), 'http://localhost:*', 'the default port counts as a port')
  t.equal(hit(m, 'http://localhost:3000'), 'http://localhost:*')
  t.equal(hit(m, 'http://localhost:65535'), 'http://localhost:*')
  t.equal(hit(m, 'http://localhost:65536'), undefined, 'not a port')
  t.equal(hit(m, 'http://localhost:80'), undefined, 'an explicit default port is not canonical')
  t.equal(hit(m, 'http://localhost:03000'), undefined, 'a leading zero is not canonical')
  t.equal(hit(m, 'https://localhost:3000'), undefined, 'same scheme only')
  t.equal(hit(m, 'http://a.localhost:3000'), undefined, 'same host only')
  t.equal(hit(m, 'http://localhost.evil.com:3000'), undefined)
  t.equal(hit(m, 'http://localhost:'), undefined)
})

t.test('null matches only the null rule, and only exactly', async (t) => {
  const without = matcher('https://app.example.com', 'https://*.example.com', 're:.*')
  t.equal(hit(without, 'null'), undefined, 'not listed: never allowed, not even by a catch-all regex')
  const withNull = matcher('null')
  t.equal(hit(withNull, 'null'), 'null')
  for (const spelling of ['Null', 'NULL', ' null', 'null ', '"null"', 'null, null']) {
    t.equal(hit(withNull, spelling), undefined, JSON.stringify(spelling))
  }
})

t.test('"*" is not returned by match(); it is exposed as `any` for the policy to apply', async (t) => {
  const m = matcher('*', 'https://app.example.com')
  t.equal(m.any?.pattern.text, '*')
  t.equal(hit(m, 'https://app.example.com'), 'https://app.example.com')
  t.equal(hit(m, 'https://other.example.com'), undefined)
  t.equal(matcher('https://app.example.com').any, undefined)
})

t.test('regular expressions see only canonical origins', async (t) => {
  const m = matcher('re:^https://pr-[0-9]+\\.preview\\.example\\.com$', 're:https://.*')
  t.equal(hit(m, 'https://pr-12.preview.example.com'), 're:^https://pr-[0-9]+\\.preview\\.example\\.com$', 'the first regex listed wins')
  t.equal(hit(m, 'https://anything.example.org'), 're:https://.*')
  // `re:https://.*` would happily match these strings; they are not serialized origins.
  t.equal(hit(m, 'https://evil.com@app.example.com'), undefined)
  t.equal(hit(m, 'https://app.example.com/'), undefined)
  t.equal(hit(m, 'https://app.example.com, https://evil.com'), undefined)
  t.equal(hit(m, 'https://APP.example.com'), undefined)
})

t.test('precedence: exact, then any-port, then wildcard, then regex', async (t) => {
  const m = matcher('re:https://.*', 'https://*.example.com:*', 'https://app.example.com:*', 'https://app.example.com')
  t.equal(hit(m, 'https://app.example.com'), 'https://app.example.com')
  t.equal(hit(m, 'https://app.example.com:8443'), 'https://app.example.com:*')
  t.equal(hit(m, 'https://b.example.com:8443'), 'https://*.example.com:*')
  t.equal(hit(m, 'https://example.org'), 're:https://.*')
})

t.test('the source of the matching entry is reported', async (t) => {
  const m = new OriginMatcher([entry('https://a.example.com', 'redis'), entry('https://*.b.example.com', 'env')])
  t.equal(m.match('https://a.example.com', NOW)?.source, 'redis')
  t.equal(m.match('https://x.b.example.com', NOW)?.source, 'env')
})

t.test('expiring entries stop matching at their expiry without a rebuild', async (t) => {
  const m = new OriginMatcher([
    entry('https://pr-1.example.com', 'redis-expiring', NOW + 1000),
    entry('https://*.preview.example.com', 'redis-expiring', NOW + 2000),
    entry('http://localhost:*', 'redis-expiring', NOW + 3000),
    entry('re:^https://pr-[0-9]+\\.example\\.org$', 'redis-expiring', NOW + 4000),
    entry('null', 'redis-expiring', NOW + 5000)
  ])
  t.equal(m.nextExpiry, NOW + 1000, 'the earliest expiry, for the caller\'s timer')
  const cases: Array<[string, number]> = [
    ['https://pr-1.example.com', NOW + 1000],
    ['https://a.preview.example.com', NOW + 2000],
    ['http://localhost:3000', NOW + 3000],
    ['https://pr-9.example.org', NOW + 4000],
    ['null', NOW + 5000]
  ]
  for (const [origin, expiry] of cases) {
    t.ok(m.match(origin, expiry - 1), `${origin} matches just before its expiry`)
    t.equal(m.match(origin, expiry), undefined, `${origin} does not match at its expiry`)
    t.equal(m.match(origin, expiry + 1), undefined, `${origin} does not match after its expiry`)
  }
  t.equal(new OriginMatcher([entry('https://a.example.com')]).nextExpiry, undefined)
})

t.test('a pattern from two sources: the one that lives longer wins', async (t) => {
  const permanentFirst = new OriginMatcher([entry('https://a.example.com', 'file'), entry('https://a.example.com', 'redis-expiring', NOW + 10)])
  const permanentLast = new OriginMatcher([entry('https://a.example.com', 'redis-expiring', NOW + 10), entry('https://a.example.com', 'redis')])
  t.equal(permanentFirst.match('https://a.example.com', NOW + 100)?.source, 'file')
  t.equal(permanentLast.match('https://a.example.com', NOW + 100)?.source, 'redis')
  const later = new OriginMatcher([entry('https://*.example.com', 'redis-expiring', NOW + 10), entry('https://*.example.com', 'redis-expiring', NOW + 20)])
  t.ok(later.match('https://a.example.com', NOW + 15), 'the later expiry is kept')
  const sooner = new OriginMatcher([entry('http://localhost:*', 'redis-expiring', NOW + 20), entry('http://localhost:*', 'redis-expiring', NOW + 10)])
  t.ok(sooner.match('http://localhost:1', NOW + 15), 'whatever the order')
})

t.test('an expired exact entry falls through to a live wildcard', async (t) => {
  const m = new OriginMatcher([entry('https://a.example.com', 'redis-expiring', NOW - 1), entry('https://*.example.com', 'file')])
  t.equal(hit(m, 'https://a.example.com'), 'https://*.example.com')
})

t.test('entries() lists every distinct pattern once', async (t) => {
  const m = matcher('*', 'null', 'https://a.example.com', 'https://a.example.com', 'https://*.example.com', 'http://localhost:*', 're:x')
  t.same([...m.entries()].map((e) => e.pattern.text).sort(),
    ['*', 'http://localhost:*', 'https://*.example.com', 'https://a.example.com', 'null', 're:x'])
})

t.test('an empty matcher matches nothing and never throws', async (t) => {
  const m = new OriginMatcher([])
  for (const o of ['', 'null', '*', 'https://a.example.com', '\u0000', 'x'.repeat(10_000)]) t.equal(m.match(o, NOW), undefined)
  t.equal(m.size, 0)
})

t.test('lookup cost stays flat as the list grows', async (t) => {
  // 50 000 exact origins and 50 000 wildcards: a scan per lookup would take far longer than this.
  const entries: MatcherEntry[] = []
  for (let i = 0; i < 50_000; i++) {
    entries.push(entry(`https://app${i}.example.com`))
    entries.push(entry(`https://*.tenant${i}.example.org`))
  }
  const m = new OriginMatcher(entries)
  const start = process.hrtime.bigint()
  let hits = 0
  for (let i = 0; i < 20_000; i++) {
    if (m.match(`https://app${i}.example.com`, NOW) !== undefined) hits++
    if (m.match(`https://x.y.tenant${i}.example.org`, NOW) !== undefined) hits++
    if (m.match(`https://x.tenant${i}.example.net`, NOW) !== undefined) hits++
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  t.equal(hits, 40_000)
  t.ok(ms < 1500, `60 000 lookups over 100 000 patterns took ${ms.toFixed(0)} ms`)
})
