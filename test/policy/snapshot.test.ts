// compile.ts and snapshot.ts: a config plus live entries becomes a PolicySnapshot; bad entries
// are reported with where they came from and skipped, the rest loads.
import t from 'tap'
import { configSchema } from '../../src/config/schema.js'
import { compilePolicy, fileEntries, parseEntries, type EntryError } from '../../src/policy/compile.js'
import { decide } from '../../src/policy/decide.js'
import { buildSnapshot, type LiveEntries } from '../../src/policy/snapshot.js'

const NOW = Date.now()

const config = configSchema.parse({
  policies: {
    default: { origins: ['https://app.example.com', 'https://*.example.com'], deny: ['https://bad.example.com'] },
    public: { origins: ['*'], credentials: false }
  },
  routes: [{ path: '/', upstream: 'http://127.0.0.1:8000' }]
})

function allows (policy: ReturnType<typeof compilePolicy> | undefined, origin: string): boolean {
  if (policy === undefined) throw new Error('no such policy')
  return decide(policy, { origin, selfOrigin: undefined, method: 'GET', now: NOW }).allowed
}

t.test('fileEntries names each entry by its config path', async (t) => {
  const e = fileEntries('default', config.policies.default!, ['http://localhost:3000'])
  t.same(e.allow.map((r) => r.where), ['policies.default.origins[0]', 'policies.default.origins[1]', 'CORSGATE_ORIGINS[0]'])
  t.same(e.allow.map((r) => r.source), ['file', 'file', 'env'])
  t.same(e.deny, [{ value: 'https://bad.example.com', source: 'file', where: 'policies.default.deny[0]' }])
})

t.test('parseEntries keeps the good entries and reports each bad one', async (t) => {
  const errors: EntryError[] = []
  const entries = parseEntries([
    { value: 'https://a.example.com', source: 'file', where: 'policies.p.origins[0]' },
    { value: 'https://a.example.com/path', source: 'file', where: 'policies.p.origins[1]' },
    { value: 'https://*.com', source: 'redis', where: 'corsgate:policy:p:origins' },
    { value: 'https://pr-1.example.com', source: 'redis-expiring', where: 'corsgate:policy:p:origins:expiring', expiresAt: 42 }
  ], errors)
  t.same(entries.map((e) => e.pattern.text), ['https://a.example.com', 'https://pr-1.example.com'])
  t.equal(entries[1]?.expiresAt, 42)
  t.notOk('expiresAt' in entries[0]!, 'no expiresAt unless given')
  t.equal(errors.length, 2)
  t.match(errors[0], { where: 'policies.p.origins[1]', value: 'https://a.example.com/path', message: /no path/ })
  t.match(errors[1], { where: 'corsgate:policy:p:origins', value: 'https://*.com', message: /public suffix/ })
})

t.test('compilePolicy drops "*" under credentials: true and reports it', async (t) => {
  const errors: EntryError[] = []
  const policyConfig = configSchema.shape.policies.parse({ p: { origins: ['*', 'https://a.example.com'] } }).p!
  const entries = parseEntries(fileEntries('p', policyConfig).allow, errors)
  const p = compilePolicy({ name: 'p', config: policyConfig, allow: entries, deny: [] }, errors)
  t.equal(errors.length, 1)
  t.match(errors[0], { where: /^policies\.p\.origins/, value: '*', message: /credentials: true/ })
  t.equal(p.allowAll, false)
  t.equal(p.allow.any, undefined, 'the "*" entry is gone')
  t.ok(allows(p, 'https://a.example.com'), 'the rest loads')
  t.notOk(allows(p, 'https://b.example.com'))
})

t.test('buildSnapshot compiles every policy; env origins go to default only', async (t) => {
  const errors: EntryError[] = []
  // builtAt is read from the clock: a fixed one here, so the check is exact (no wall-clock bounds).
  const clock = t.capture(Date, 'now', () => NOW + 42)
  const s = buildSnapshot({ config, envOrigins: ['http://localhost:*'], version: 7 }, errors)
  clock.restore()
  t.same(errors, [])
  t.equal(s.version, 7)
  t.equal(s.builtAt, NOW + 42, 'builtAt is when the snapshot was built')
  t.same([...s.policies.keys()], ['default', 'public'])
  const def = s.policies.get('default')
  t.ok(allows(def, 'http://localhost:5173'), 'env origin added to default')
  t.equal(def && decide(def, { origin: 'http://localhost:5173', selfOrigin: undefined, method: 'GET', now: NOW }).ruleSource, 'env')
  t.notOk(allows(def, 'https://bad.example.com'), 'file deny applies')
  t.equal(s.policies.get('public')?.allowAll, true)
  t.equal(s.policies.get('public')?.allow.size, 1, 'env origins are not added to other policies')
})

t.test('buildSnapshot adds live entries; a bad live entry is skipped and reported', async (t) => {
  const live = new Map<string, LiveEntries>([
    ['default', {
      allow: [
        { value: 'https://partner.org', source: 'redis', where: 'corsgate:policy:default:origins' },
        { value: 'https://*.co.uk', source: 'redis', where: 'corsgate:policy:default:origins' },
        { value: 'https://pr-9.preview.net', source: 'redis-expiring', where: 'corsgate:policy:default:origins:expiring', expiresAt: NOW + 60_000 }
      ],
      deny: [{ value: 'https://evil.example.com', source: 'redis', where: 'corsgate:policy:default:deny' }]
    }],
    ['unknown', { allow: [{ value: 'https://x.org', source: 'redis', where: 'k' }], deny: [] }]
  ])
  const errors: EntryError[] = []
  const s = buildSnapshot({ config, envOrigins: [], live, version: 2 }, errors)
  t.equal(errors.length, 1)
  t.match(errors[0], { where: 'corsgate:policy:default:origins', value: 'https://*.co.uk' })
  const def = s.policies.get('default')
  t.ok(allows(def, 'https://partner.org'))
  t.ok(allows(def, 'https://pr-9.preview.net'))
  t.equal(def?.nextExpiry, NOW + 60_000)
  t.notOk(allows(def, 'https://evil.example.com'), 'live deny applies')
  t.ok(allows(def, 'https://app.example.com'), 'file entries stay')
  t.notOk(s.policies.has('unknown'), 'live entries for a policy the config lacks create no policy')
})

t.test('a snapshot is not changed by a later build', async (t) => {
  const first = buildSnapshot({ config, envOrigins: [], version: 1 }, [])
  const live = new Map<string, LiveEntries>([['default', { allow: [{ value: 'https://late.org', source: 'redis', where: 'k' }], deny: [] }]])
  const second = buildSnapshot({ config, envOrigins: [], live, version: 2 }, [])
  t.notOk(allows(first.policies.get('default'), 'https://late.org'), 'a request keeps the snapshot it started with')
  t.ok(allows(second.policies.get('default'), 'https://late.org'))
})
