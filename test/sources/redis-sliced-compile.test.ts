// The sliced build the Redis source uses gives the same snapshot as the one-shot build,
// reports the same bad entries, yields to the event loop while it runs, and with a pattern
// cache parses each text once across builds.
import t from 'tap'
import { parseConfig } from '../../src/config/load.js'
import type { EntryError, RawEntry } from '../../src/policy/compile.js'
import { buildSnapshot, PatternCache, type LiveEntries } from '../../src/policy/snapshot.js'
import { buildSnapshotInSlices } from '../../src/sources/sliced-build.js'

const loaded = parseConfig(`
policies:
  default: { origins: ["https://app.example.com"], deny: ["https://bad.example.com"] }
  other: { origins: [] }
routes: [{ path: /, upstream: "http://127.0.0.1:9" }]
`, 'test.yaml')

function live (n: number): Map<string, LiveEntries> {
  const allow: RawEntry[] = []
  for (let i = 0; i < n; i++) allow.push({ value: i % 10 === 0 ? `https://*.t${i}.example.com` : `https://a${i}.example.com`, source: 'redis', where: 'k:origins' })
  allow.push({ value: 'https://*.com', source: 'redis', where: 'k:origins' })
  allow.push({ value: 'https://pr-1.example.org', source: 'redis-expiring', where: 'k:origins:expiring', expiresAt: Date.now() + 60_000 })
  return new Map([['default', { allow, deny: [{ value: 'https://evil.example.org', source: 'redis', where: 'k:deny' }] }]])
}

const entries = (m: { entries: () => Iterable<{ pattern: { text: string }, source: string, expiresAt?: number }> }): string[] =>
  [...m.entries()].map((e) => `${e.pattern.text} ${e.source} ${e.expiresAt ?? ''}`).sort()

t.test('same snapshot and errors as buildSnapshot', async (t) => {
  const input = { config: loaded.config, envOrigins: [], live: live(5000), version: 7 }
  const e1: EntryError[] = []
  const e2: EntryError[] = []
  const one = buildSnapshot(input, e1)
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 0)
  const sliced = await buildSnapshotInSlices(input, e2, { sliceBudgetMs: 1 })
  clearInterval(timer)
  t.equal(sliced.version, 7)
  t.same([...sliced.policies.keys()], [...one.policies.keys()])
  for (const [name, p] of one.policies) {
    t.same(entries(sliced.policies.get(name)!.allow), entries(p.allow), `${name}: same allow entries`)
    t.same(entries(sliced.policies.get(name)!.deny), entries(p.deny), `${name}: same deny entries`)
    t.equal(sliced.policies.get(name)!.nextExpiry, p.nextExpiry)
  }
  t.same(e2, e1, 'same errors, with key and value')
  t.equal(e1.length, 1)
  t.ok(ticks > 0, 'timers ran while it compiled')
})

t.test('a pattern cache parses each text once and forgets what is no longer listed', async (t) => {
  const cache = new PatternCache()
  const input = { config: loaded.config, envOrigins: [], live: live(100), version: 1 }
  const errors: EntryError[] = []
  const a = await buildSnapshotInSlices(input, errors, { cache })
  const again: EntryError[] = []
  const b = await buildSnapshotInSlices(input, again, { cache })
  t.same(again, errors, 'a cached invalid entry is still reported, with its key')
  const pa = [...a.policies.get('default')!.allow.entries()].find((e) => e.pattern.text === 'https://a1.example.com')
  const pb = [...b.policies.get('default')!.allow.entries()].find((e) => e.pattern.text === 'https://a1.example.com')
  t.equal(pb?.pattern, pa?.pattern, 'the parsed pattern object was reused')
  await buildSnapshotInSlices({ ...input, live: new Map() }, [], { cache })
  t.ok(cache.size < 10, `only the file's patterns remain cached (${cache.size})`)
})
