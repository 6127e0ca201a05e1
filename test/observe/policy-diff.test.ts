// `diff` against a hand-computed expectation (src/observe/policy-diff.ts): wildcards, any-port
// patterns, Redis allow sets, expiring entries (live and expired), deny entries from the file
// and from Redis, noOrigin, report-only → enforce, same-origin traffic, other and invalid.
import t from 'tap'
import { parseConfig } from '../../src/config/load.js'
import type { RawEntry } from '../../src/policy/compile.js'
import { buildSnapshot, type LiveEntries } from '../../src/policy/snapshot.js'
import type { ObservedCounts } from '../../src/observe/observed-report.js'
import { addLocalRows } from '../../src/observe/observed-report.js'
import { OriginObserver } from '../../src/observe/origin-table.js'
import type { Outcome, Reason } from '../../src/policy/decide.js'
import { diffPolicies } from '../../src/observe/policy-diff.js'
import { testConfigYaml } from '../helpers/gateway.js'

const NOW = 1_800_000_000_000
const HOUR = 3_600_000

function policies (policyConfigs: Record<string, Record<string, unknown>>, live: Map<string, LiveEntries>) {
  const loaded = parseConfig(testConfigYaml({ policies: policyConfigs, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] }), 'x.yaml')
  return buildSnapshot({ config: loaded.config, envOrigins: [], live, version: 0 }, []).policies
}

const redisEntries = (allow: string[], expiring: Array<[string, number]>, deny: string[]): LiveEntries => ({
  allow: [
    ...allow.map((value): RawEntry => ({ value, source: 'redis', where: 'k:origins' })),
    ...expiring.map(([value, expiresAt]): RawEntry => ({ value, source: 'redis-expiring', where: 'k:origins:expiring', expiresAt }))
  ],
  deny: deny.map((value) => ({ value, source: 'redis', where: 'k:deny' }))
})

function observed (policy: string, rows: Array<[string | undefined, Outcome, Reason, number]>): ObservedCounts {
  const o = new OriginObserver({ maxOrigins: 100, retentionMs: 7 * 86_400_000, now: () => NOW })
  for (const [origin, outcome, reason, n] of rows) for (let i = 0; i < n; i++) o.record(policy, origin, outcome, reason, '/')
  const counts: ObservedCounts = new Map()
  addLocalRows(counts, o.table(policy)!, false, 0)
  return counts
}

const redis = new Map([
  ['default', redisEntries(['https://partner.example.org'], [['https://pr-1.preview.example.net', NOW + HOUR], ['https://pr-2.preview.example.net', NOW - HOUR]], ['https://bad.example.com'])],
  ['api', redisEntries([], [], [])]
])

const live = policies({
  default: { origins: ['https://app.example.com', 'https://*.example.com', 'http://localhost:*'], deny: ['https://old.example.com'] },
  api: { origins: ['https://*.partner.example.net'], mode: 'report-only' }
}, redis)
const candidate = policies({
  default: { origins: ['https://app.example.com', 'http://localhost:3000', 'https://new.example.org'], deny: ['https://*.legacy.example.com'], noOrigin: 'deny' },
  api: { origins: ['https://*.partner.example.net'] }
}, redis)

const traffic = new Map([
  ['default', observed('default', [
    ['https://app.example.com', 'allowed', 'origin_allowed', 100], // exact in both
    ['https://shop.example.com', 'allowed', 'origin_allowed', 40], // *.example.com only in live
    ['https://a.legacy.example.com', 'allowed', 'origin_allowed', 7], // live wildcard; candidate deny wildcard
    ['http://localhost:5173', 'allowed', 'origin_allowed', 12], // live :*, candidate :3000 only
    ['http://localhost:3000', 'allowed', 'origin_allowed', 5], // both
    ['https://partner.example.org', 'allowed', 'origin_allowed', 9], // Redis SET: both
    ['https://pr-1.preview.example.net', 'allowed', 'origin_allowed', 3], // live expiring entry: both
    ['https://pr-2.preview.example.net', 'denied', 'origin_not_allowed', 2], // expired entry: denied in both
    ['https://old.example.com', 'denied', 'denylisted', 4], // file deny in live; unlisted in candidate: denied both
    ['https://bad.example.com', 'denied', 'denylisted', 6], // Redis deny beats *.example.com: denied both
    ['https://new.example.org', 'denied', 'origin_not_allowed', 8], // candidate lists it
    [undefined, 'no_origin', 'no_origin', 20], // noOrigin allow → deny
    ['https://gw.example.com', 'same_origin', 'same_origin', 10], // same-origin: not judged
    ['https://a.example.com, https://b.example.com', 'denied', 'origin_not_allowed', 3] // invalid
  ])],
  ['api', observed('api', [
    ['https://x.partner.example.net', 'allowed', 'origin_allowed', 5],
    ['https://stranger.example.org', 'would_deny', 'origin_not_allowed', 6] // report-only → enforce
  ])]
])

t.test('the flips of a hand-computed expectation, refusals first', async (t) => {
  const report = diffPolicies(live, candidate, traffic, '24h', NOW)
  t.same(report.flips.map((f) => [f.policy, f.origin, f.requests, `${f.from}>${f.to}`, f.toReason]), [
    ['default', 'https://shop.example.com', 40, 'allowed>denied', 'origin_not_allowed'],
    ['default', null, 20, 'allowed>denied', 'no_origin_denied'],
    ['default', 'http://localhost:5173', 12, 'allowed>denied', 'origin_not_allowed'],
    ['default', 'https://a.legacy.example.com', 7, 'allowed>denied', 'denylisted'],
    ['api', 'https://stranger.example.org', 6, 'would_deny>denied', 'origin_not_allowed'],
    ['default', 'https://new.example.org', 8, 'denied>allowed', 'origin_allowed']
  ])
  t.same(report.flips[0], { policy: 'default', origin: 'https://shop.example.com', requests: 40, from: 'allowed', to: 'denied', fromReason: 'origin_allowed', toReason: 'origin_not_allowed', fromRule: 'https://*.example.com', toRule: null, breaking: true })
  t.equal(report.flips[3]!.toRule, 'https://*.legacy.example.com', 'the deny wildcard that refuses it')
  t.same(report.breaking, { origins: 5, requests: 85 })
  t.same(report.unjudged, { default: { other: 0, invalid: 3 }, api: { other: 0, invalid: 0 } })
  t.same(report.missingPolicies, [])
})

t.test('the same candidate twice: no flips', async (t) => {
  const report = diffPolicies(live, live, traffic, '24h', NOW)
  t.same(report.flips, [])
  t.same(report.breaking, { origins: 0, requests: 0 })
})

t.test('an expiring entry flips once it has expired', async (t) => {
  const later = diffPolicies(live, candidate, traffic, '24h', NOW + 2 * HOUR)
  t.notOk(later.flips.some((f) => f.origin === 'https://pr-1.preview.example.net'), 'expired on both sides alike: no flip')
  const without = policies({ default: { origins: ['https://app.example.com'] }, api: { origins: [] } }, new Map())
  const r = diffPolicies(live, without, traffic, '24h', NOW)
  t.ok(r.flips.some((f) => f.origin === 'https://pr-1.preview.example.net' && f.from === 'allowed' && f.to === 'denied' && f.fromRule === 'https://pr-1.preview.example.net'), 'the live expiring entry allowed it; a candidate without it refuses it')
})

t.test('live side from the decisions observed', async (t) => {
  const report = diffPolicies('observed', candidate, traffic, '24h', NOW)
  t.same(report.flips.map((f) => [f.origin, `${f.from}>${f.to}`]), [
    ['https://shop.example.com', 'allowed>denied'],
    [null, 'allowed>denied'],
    ['http://localhost:5173', 'allowed>denied'],
    ['https://a.legacy.example.com', 'allowed>denied'],
    ['https://stranger.example.org', 'would_deny>denied'],
    ['https://new.example.org', 'denied>allowed']
  ], 'the same flips as judging the live config')
})
