// Property tests (fast-check) of the matcher against a plain reference written here: for
// exact, `*.` subdomain, `:*` any-port, `null` and escaped `re:` patterns, over generated
// origins and pattern lists full of near-misses (shared suffixes, case changes, ports).
import fc from 'fast-check'
import t from 'tap'
import { policySchema } from '../../src/config/schema.js'
import { compilePolicy, parseEntries, type EntryError } from '../../src/policy/compile.js'
import { decide } from '../../src/policy/decide.js'
import { OriginMatcher, type MatcherEntry } from '../../src/policy/matcher.js'
import { OriginPatternError, parseOriginPattern } from '../../src/policy/origin-pattern.js'

const NOW = 1_700_000_000_000
const RUNS = { numRuns: 400 }

// ---- the reference ---------------------------------------------------------------------

type Scheme = 'http' | 'https'
type RefPattern =
  | { kind: 'exact', scheme: Scheme, host: string, port: string }
  | { kind: 'subdomain', scheme: Scheme, suffix: string, port: string } // port '' default, '*' any
  | { kind: 'any-port', scheme: Scheme, host: string }
  | { kind: 'null' }
  | { kind: 'regex', scheme: Scheme, host: string, port: string } // an escaped exact origin

const DEFAULT_PORT: Record<Scheme, string> = { http: '80', https: '443' }

/** The parts of a canonical http(s) origin, or undefined for any other string. Plain string work. */
function refParse (origin: string): { scheme: Scheme, host: string, port: string } | undefined {
  const sep = origin.indexOf('://')
  if (sep < 0) return undefined
  const scheme = origin.slice(0, sep)
  if (scheme !== 'http' && scheme !== 'https') return undefined
  let host = origin.slice(sep + 3)
  let port = ''
  const colon = host.lastIndexOf(':')
  if (colon >= 0) {
    port = host.slice(colon + 1)
    host = host.slice(0, colon)
    if (port === '' || port[0] === '0' || [...port].some((c) => c < '0' || c > '9') || Number(port) > 65535) return undefined
    if (port === DEFAULT_PORT[scheme]) return undefined
  }
  const labels = host.split('.')
  for (const label of labels) {
    if (label === '' || [...label].some((c) => !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c === '-'))) return undefined
  }
  return { scheme, host, port }
}

function refMatches (origin: string, p: RefPattern): boolean {
  if (p.kind === 'null') return origin === 'null'
  const o = refParse(origin)
  if (o === undefined || o.scheme !== p.scheme) return false
  switch (p.kind) {
    case 'exact':
    case 'regex':
      return o.host === p.host && o.port === p.port
    case 'any-port':
      return o.host === p.host
    case 'subdomain':
      return o.host.endsWith(`.${p.suffix}`) && (p.port === '*' || o.port === p.port)
  }
}

// ---- generators -------------------------------------------------------------------------

const LABELS = ['app', 'a', 'b', 'www', 'example', 'examplecom', 'com', 'evil', 'co', 'uk', 'localhost', 'xn--pp-6kc', 'app-1', 'ple']
const SUFFIXES = ['example.com', 'app.example.com', 'a.example.com', 'evil.com', 'examplecom.com', 'example.co.uk', 'localhost', 'com', 'co.uk']
const PORTS = ['', '80', '443', '3000', '8443', '65535']

const scheme = fc.constantFrom<Scheme>('http', 'https')
const host = fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'))
const port = fc.constantFrom(...PORTS)
const normPort = (s: Scheme, p: string): string => (p === DEFAULT_PORT[s] ? '' : p)

/** A pattern as the reference sees it, and the text an operator might have written for it. */
const pattern: fc.Arbitrary<{ ref: RefPattern, text: string }> = fc.oneof(
  fc.record({ scheme, host, port, upper: fc.boolean() }).map(({ scheme, host, port, upper }) => {
    const text = `${scheme}://${host}${port === '' ? '' : `:${port}`}`
    return { ref: { kind: 'exact' as const, scheme, host, port: normPort(scheme, port) }, text: upper ? text.toUpperCase() : text }
  }),
  fc.record({ scheme, suffix: fc.constantFrom(...SUFFIXES), port: fc.constantFrom(...PORTS, '*') }).map(({ scheme, suffix, port }) => ({
    ref: { kind: 'subdomain' as const, scheme, suffix, port: port === '*' ? '*' : normPort(scheme, port) },
    text: `${scheme}://*.${suffix}${port === '' ? '' : `:${port}`}`
  })),
  fc.record({ scheme, host }).map(({ scheme, host }) => ({ ref: { kind: 'any-port' as const, scheme, host }, text: `${scheme}://${host}:*` })),
  fc.constant({ ref: { kind: 'null' as const }, text: 'null' }),
  fc.record({ scheme, host, port }).map(({ scheme, host, port }) => {
    const p = normPort(scheme, port)
    const origin = `${scheme}://${host}${p === '' ? '' : `:${p}`}`
    return { ref: { kind: 'regex' as const, scheme, host, port: p }, text: `re:${origin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}` }
  })
)

/** Ways to turn a canonical origin into a near-miss. */
const MUTATIONS: Array<(o: string) => string> = [
  (o) => o,
  (o) => o,
  (o) => o.toUpperCase(),
  (o) => o.replace(/^[a-z]/, (c) => c.toUpperCase()),
  (o) => o.replace(/\.([a-z])/, (_m, c: string) => `.${c.toUpperCase()}`),
  (o) => `${o}/`,
  (o) => `${o}.`,
  (o) => `${o}.evil.com`,
  (o) => `${o}:443`,
  (o) => `${o}:80`,
  (o) => `${o}:03000`,
  (o) => o.replace('://', '://evil.com@'),
  (o) => `${o}, https://evil.com`,
  (o) => ` ${o}`,
  (o) => o.replace('https://', 'http://'),
  (o) => o.replace('http://', 'https://'),
  (o) => o.replace(/\.[^.]*$/, ''), // drop the last label: the apex of a suffix
  (o) => o.replace('://', '://x'),
  (o) => o.replace('a', 'а'), // Cyrillic а
  (o) => `${o}_`
]

const origin: fc.Arbitrary<string> = fc.oneof(
  fc.record({ scheme, host, port }).map(({ scheme, host, port }) => `${scheme}://${host}${port === '' ? '' : `:${port}`}`),
  fc.record({ scheme, sub: host, suffix: fc.constantFrom(...SUFFIXES), port }).map(({ scheme, sub, suffix, port }) => `${scheme}://${sub}.${suffix}${port === '' ? '' : `:${port}`}`),
  fc.constantFrom('null', 'Null', '*', '')
).chain((o) => fc.nat(MUTATIONS.length - 1).map((i) => MUTATIONS[i]!(o)))

/** Patterns the grammar accepts (a wildcard over a public suffix is rejected, so it is dropped). */
function accepted (list: Array<{ ref: RefPattern, text: string }>): Array<{ ref: RefPattern, entry: MatcherEntry }> {
  const out: Array<{ ref: RefPattern, entry: MatcherEntry }> = []
  for (const p of list) {
    try {
      out.push({ ref: p.ref, entry: { pattern: parseOriginPattern(p.text), source: 'file' } })
    } catch (err) {
      if (!(err instanceof OriginPatternError)) throw err
      if (p.ref.kind !== 'subdomain') throw new Error(`unexpected rejection of ${p.text}: ${(err as Error).message}`)
    }
  }
  return out
}

// ---- properties -------------------------------------------------------------------------

/** A canonical origin the reference says `r` matches (`sub` picks subdomain labels). */
function originFor (r: RefPattern, sub: string[]): string {
  switch (r.kind) {
    case 'null': return 'null'
    case 'exact': case 'regex': return `${r.scheme}://${r.host}${r.port === '' ? '' : `:${r.port}`}`
    case 'any-port': return `${r.scheme}://${r.host}:3000`
    case 'subdomain': return `${r.scheme}://${sub.join('.')}.${r.suffix}${r.port === '' ? '' : `:${r.port === '*' ? '8443' : r.port}`}`
  }
}

/** Patterns, and origins that are partly random and partly near-misses of those patterns. */
const scenario = fc.array(pattern, { minLength: 1, maxLength: 8 }).chain((patterns) => fc.tuple(
  fc.constant(patterns),
  fc.array(fc.oneof(
    origin,
    fc.tuple(fc.nat(patterns.length - 1), fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 2 }), fc.nat(MUTATIONS.length - 1))
      .map(([pi, sub, mi]) => MUTATIONS[mi]!(originFor(patterns[pi]!.ref, sub)))
  ), { minLength: 1, maxLength: 12 })
))

t.test('the matcher agrees with the reference', async (t) => {
  let hits = 0
  let total = 0
  fc.assert(fc.property(scenario, ([patterns, origins]) => {
    const list = accepted(patterns)
    const m = new OriginMatcher(list.map((p) => p.entry))
    for (const o of origins) {
      const expected = list.some((p) => refMatches(o, p.ref))
      const got = m.match(o, NOW)
      total++
      if (expected) hits++
      if ((got !== undefined) !== expected) throw new Error(`${JSON.stringify(o)} against ${JSON.stringify(list.map((p) => p.entry.pattern.text))}: matcher ${got?.pattern.text ?? 'none'}, reference ${expected}`)
      if (got !== undefined) {
        const source = list.find((p) => p.entry === got)
        if (source === undefined || !refMatches(o, source.ref)) throw new Error(`${JSON.stringify(o)}: matcher named ${got.pattern.text}, which the reference says does not match`)
      }
    }
  }), RUNS)
  t.ok(hits > total / 10, `the generators hit often enough to mean something (${hits} of ${total})`)
})

t.test('an origin generated from a pattern matches it; its near-misses follow the reference', async (t) => {
  fc.assert(fc.property(pattern, fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 2 }), fc.nat(MUTATIONS.length - 1), (p, sub, mi) => {
    const [only] = accepted([p])
    if (only === undefined) return
    const r = only.ref
    const base = originFor(r, sub)
    const m = new OriginMatcher([only.entry])
    if (m.match(base, NOW) === undefined) throw new Error(`${base} should match ${only.entry.pattern.text}`)
    const near = MUTATIONS[mi]!(base)
    if ((m.match(near, NOW) !== undefined) !== refMatches(near, r)) throw new Error(`${JSON.stringify(near)} vs ${only.entry.pattern.text}: reference ${refMatches(near, r)}`)
  }), RUNS)
  t.pass('agreed')
})

t.test('normalisation is idempotent: a pattern\'s text parses to itself', async (t) => {
  fc.assert(fc.property(pattern, (p) => {
    const [only] = accepted([p])
    if (only === undefined || only.entry.pattern.kind === 'regex') return
    const again = parseOriginPattern(only.entry.pattern.text)
    if (JSON.stringify(again) !== JSON.stringify(only.entry.pattern)) throw new Error(`${only.entry.pattern.text} → ${again.text}`)
  }), RUNS)
  t.pass('idempotent')
})

const FULL = policySchema.parse({ origins: [] })
function policyWith (patterns: string[]) {
  const errors: EntryError[] = []
  const allow = parseEntries(patterns.map((value, i) => ({ value, source: 'file', where: `origins[${i}]` })), errors)
  return compilePolicy({ name: 'p', config: FULL, allow, deny: [] }, errors)
}
const BROAD = policyWith(['https://app.example.com', 'https://*.example.com', 'https://*.example.com:*', 'http://localhost:*', 'null', 're:^https://pr-[0-9]+\\.preview\\.example\\.org$', 'http://[::1]:*'])

/** Arbitrary strings, and strings that start like an origin and go wrong anywhere after. */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'binary-ascii', maxLength: 80 }),
  fc.tuple(fc.constantFrom('https://', 'http://', 'https://app.example.com', 'http://localhost:', 'https://a.example.com', 'http://[', 'null'), fc.string({ unit: 'binary', maxLength: 30 })).map(([a, b]) => a + b)
)

t.test('lookups never throw, and whatever matches is a canonical origin echoed byte for byte', async (t) => {
  fc.assert(fc.property(anyString, (o) => {
    const hit = BROAD.allow.match(o, NOW)
    if (hit !== undefined && o !== 'null' && refParse(o) === undefined && !o.startsWith('http://[')) {
      throw new Error(`${JSON.stringify(o)} is not a canonical origin but matched ${hit.pattern.text}`)
    }
    const d = decide(BROAD, { origin: o, selfOrigin: 'https://gateway.test', method: 'GET', requestHeaders: o, now: NOW })
    if (d.allowOrigin !== undefined && d.allowOrigin !== o) throw new Error(`${JSON.stringify(o)} echoed as ${JSON.stringify(d.allowOrigin)}`)
  }), { numRuns: 2000 })
  t.pass('no throw')
})

t.test('parsing a pattern either succeeds or throws OriginPatternError, for any string', async (t) => {
  fc.assert(fc.property(anyString, (s) => {
    try {
      parseOriginPattern(s)
    } catch (err) {
      if (!(err instanceof OriginPatternError)) throw new Error(`${JSON.stringify(s)} threw ${(err as Error).name}: ${(err as Error).message}`)
    }
  }), { numRuns: 2000 })
  t.pass('only OriginPatternError')
})
