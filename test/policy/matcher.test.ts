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

let entryReads = 0
/** An entry that counts reads of its fields: a scan of the list (an array walk) reads them all. */
function countedEntry (text: string): MatcherEntry {
  const e = entry(text)
  return {
    get pattern () { entryReads++; return e.pattern },
    get source () { entryReads++; return e.source }
  }
}

/**
 * Counts the Map work done by `fn`: lookups (`get`/`has`) and walks (any iteration of a Map).
 * The matcher's cost is its Map work (plus parsing the origin, the same whatever the list), so
 * equal counts (and equally many entries read) mean equal cost; the time figure belongs in bench/decide.ts, not in a test.
 */
function mapWork<T> (fn: () => T): { result: T, lookups: number, walks: number, entryReads: number } {
  const proto = Map.prototype as unknown as Record<string | symbol, (...args: unknown[]) => unknown>
  const names: Array<string | symbol> = ['get', 'has', 'forEach', 'keys', 'values', 'entries', Symbol.iterator]
  const saved = names.map((name) => proto[name]!)
  let lookups = 0
  let walks = 0
  entryReads = 0
  names.forEach((name, k) => {
    const original = saved[k]!
    proto[name] = function (this: unknown, ...args: unknown[]) {
      if (name === 'get' || name === 'has') lookups++
      else walks++
      return original.apply(this, args)
    }
  })
  try {
    const result = fn()
    return { result, lookups, walks, entryReads }
  } finally {
    names.forEach((name, k) => { proto[name] = saved[k]! })
  }
}

t.test('lookup cost stays flat as the list grows', async (t) => {
  // 50 000 exact origins and 50 000 wildcards, against a matcher holding only the entries the
  // probes below can hit: the same answers, and exactly the same Map work per lookup.
  const N = 50_000
  const exactText = (i: number): string => `https://app${i}.example.com`
  const wildText = (i: number): string => `https://*.tenant${i}.example.org`
  const big: MatcherEntry[] = []
  for (let i = 0; i < N; i++) big.push(countedEntry(exactText(i)), countedEntry(wildText(i)))
  const sampled = [0, 1, 9, 10, 11, N - 1, ...Array.from({ length: 20 }, (_, k) => (k * 7919) % N)]
  const small: MatcherEntry[] = []
  for (const i of new Set(sampled)) small.push(countedEntry(exactText(i)), countedEntry(wildText(i)))
  const probes: string[] = []
  for (const i of sampled) {
    probes.push(
      `https://app${i}.example.com`, `https://x.y.tenant${i}.example.org`, // hits
      `https://x.tenant${i}.example.net`, `http://app${i}.example.com`, `https://app${i}.example.com:8443`, // near misses
      `https://app${i}x.example.com`, `https://tenant${i}.example.org`, // not the apex
      `https://x.tenant${i}.example.org.evil.com`, `https://x.tenant${i}x.example.org`, `http://x.tenant${i}.example.org`,
      `https://x.tenant${i}.example.org:444`, `https://APP${i}.example.com`)
  }

  // The reference: a plain scan of the pattern texts, in list order.
  const scan = big.map((e) => e.pattern.text).map((p) => p.includes('*') ? { text: p, suffix: p.slice('https://*'.length) } : { text: p, suffix: undefined })
  const reference = (origin: string): string | undefined => {
    const host = origin.startsWith('https://') ? origin.slice('https://'.length) : undefined
    for (const { text, suffix } of scan) {
      if (suffix === undefined ? origin === text : host !== undefined && !host.includes(':') && host.length > suffix.length && host.endsWith(suffix)) return text
    }
    return undefined
  }

  const bigMatcher = new OriginMatcher(big)
  const smallMatcher = new OriginMatcher(small)
  t.equal(bigMatcher.size, 2 * N)
  const run = (m: OriginMatcher): Array<string | undefined> => probes.map((o) => m.match(o, NOW)?.pattern.text)
  const onBig = mapWork(() => run(bigMatcher))
  const onSmall = mapWork(() => run(smallMatcher))
  t.same(onBig.result, probes.map(reference), 'the 100 000-entry matcher answers as a scan of its list does')
  t.same(onSmall.result, onBig.result, 'and as the small one does')
  t.equal(onBig.result.filter((r) => r !== undefined).length, 2 * sampled.length, 'every hit probe hit, no near miss did')
  t.equal(onBig.walks, 0, 'no lookup walks a Map')
  t.ok(onBig.lookups > 0, 'the lookups were counted')
  t.equal(onBig.lookups, onSmall.lookups, `the same Map lookups over 100 000 patterns as over ${small.length} (${onBig.lookups} for ${probes.length} probes)`)
  t.equal(onBig.entryReads, onSmall.entryReads, `and the same entries read (${onBig.entryReads}): no scan of the list`)
  t.ok(onBig.lookups <= probes.length * 8, 'a handful per probe, bounded by the labels of its host')
})
