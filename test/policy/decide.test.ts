// decide(): the decision order of SPEC.md "Decision for one request", the method and header
// checks, and the three modes.
import t from 'tap'
import { policySchema } from '../../src/config/schema.js'
import { compilePolicy, parseEntries, type CompiledPolicy, type EntryError } from '../../src/policy/compile.js'
import { decide, type RequestFacts } from '../../src/policy/decide.js'

const NOW = 1_700_000_000_000

function policyOf (raw: Record<string, unknown>, name = 'default'): CompiledPolicy {
  const config = policySchema.parse(raw)
  const errors: EntryError[] = []
  const toRaw = (list: string[], field: string) => list.map((value, i) => ({ value, source: 'file', where: `policies.${name}.${field}[${i}]` }))
  const policy = compilePolicy({ name, config, allow: parseEntries(toRaw(config.origins, 'origins'), errors), deny: parseEntries(toRaw(config.deny, 'deny'), errors) }, errors)
  if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('\n'))
  return policy
}

function facts (over: Partial<RequestFacts>): RequestFacts {
  return { origin: 'https://app.example.com', selfOrigin: 'https://api.example.com', method: 'GET', now: NOW, ...over }
}

const BASE = { origins: ['https://app.example.com', 'https://*.example.com'] }

t.test('1. no Origin: noOrigin allow (default)', async (t) => {
  const d = decide(policyOf(BASE), facts({ origin: undefined }))
  t.match(d, { allowed: true, reason: 'no_origin', outcome: 'no_origin', reject: false, allowOrigin: undefined })
  t.equal(d.rule, undefined)
})

t.test('1. no Origin: noOrigin deny → 403', async (t) => {
  const d = decide(policyOf({ ...BASE, noOrigin: 'deny' }), facts({ origin: undefined }))
  t.match(d, { allowed: false, reason: 'no_origin_denied', outcome: 'denied', reject: true, allowOrigin: undefined })
})

t.test('1. no Origin is not judged by method or headers', async (t) => {
  const d = decide(policyOf({ ...BASE, methods: ['GET'] }), facts({ origin: undefined, method: 'DELETE', requestHeaders: 'x-unlisted' }))
  t.match(d, { allowed: true, reason: 'no_origin' })
})

t.test('2. same-origin is allowed, before deny and allow lists', async (t) => {
  const p = policyOf({ origins: [], deny: ['https://api.example.com'] })
  const d = decide(p, facts({ origin: 'https://api.example.com', selfOrigin: 'https://api.example.com' }))
  t.match(d, { allowed: true, reason: 'same_origin', outcome: 'same_origin', reject: false, allowOrigin: 'https://api.example.com' })
})

t.test('2. same-origin is an exact comparison', async (t) => {
  const p = policyOf({ origins: [] })
  for (const origin of ['https://API.example.com', 'https://api.example.com:443', 'http://api.example.com', 'https://api.example.com/']) {
    const d = decide(p, facts({ origin, selfOrigin: 'https://api.example.com' }))
    t.equal(d.reason, 'origin_not_allowed', origin)
  }
  t.equal(decide(p, facts({ origin: 'https://api.example.com', selfOrigin: undefined })).reason, 'origin_not_allowed', 'no self origin known: no same-origin shortcut')
})

t.test('3. deny wins over allow', async (t) => {
  const p = policyOf({ origins: ['https://app.example.com', 'https://*.example.com'], deny: ['https://app.example.com', 'https://*.bad.example.com'] })
  const d = decide(p, facts({ origin: 'https://app.example.com' }))
  t.match(d, { allowed: false, reason: 'denylisted', rule: 'https://app.example.com', ruleSource: 'file', outcome: 'denied', reject: true, allowOrigin: undefined })
  t.match(decide(p, facts({ origin: 'https://x.bad.example.com' })), { reason: 'denylisted', rule: 'https://*.bad.example.com' })
  t.match(decide(p, facts({ origin: 'https://ok.example.com' })), { reason: 'origin_allowed', rule: 'https://*.example.com' })
})

t.test('3. deny "*" denies every origin, even with "*" allowed', async (t) => {
  const p = policyOf({ origins: ['*'], deny: ['*'], credentials: false })
  t.match(decide(p, facts({ origin: 'https://app.example.com' })), { reason: 'denylisted', rule: '*', allowOrigin: undefined })
})

t.test('3. deny is checked before the method', async (t) => {
  const p = policyOf({ ...BASE, deny: ['https://app.example.com'], methods: ['GET'] })
  t.equal(decide(p, facts({ method: 'DELETE' })).reason, 'denylisted')
})

t.test('4. allow names the matching pattern and its source', async (t) => {
  const p = policyOf({ origins: ['https://app.example.com', 'https://*.example.com', 'http://localhost:*', 're:^https://pr-[0-9]+\\.preview\\.example\\.org$'] })
  const cases: Array<[string, string]> = [
    ['https://app.example.com', 'https://app.example.com'],
    ['https://b.example.com', 'https://*.example.com'],
    ['http://localhost:5173', 'http://localhost:*'],
    ['https://pr-42.preview.example.org', 're:^https://pr-[0-9]+\\.preview\\.example\\.org$']
  ]
  for (const [origin, rule] of cases) {
    const d = decide(p, facts({ origin }))
    t.match(d, { allowed: true, reason: 'origin_allowed', outcome: 'allowed', rule, ruleSource: 'file', reject: false, allowOrigin: origin }, origin)
  }
})

t.test('5. origin_not_allowed', async (t) => {
  const d = decide(policyOf(BASE), facts({ origin: 'https://evil.com' }))
  t.match(d, { allowed: false, reason: 'origin_not_allowed', outcome: 'denied', reject: true, allowOrigin: undefined })
  t.equal(d.rule, undefined, 'no rule matched')
})

t.test('method_not_allowed names the method and the origin rule', async (t) => {
  const p = policyOf({ ...BASE, methods: ['GET', 'POST'] })
  t.match(decide(p, facts({ method: 'POST' })), { allowed: true })
  const d = decide(p, facts({ method: 'DELETE' }))
  t.match(d, { allowed: false, reason: 'method_not_allowed', detail: 'DELETE', rule: 'https://app.example.com', reject: true, allowOrigin: undefined })
  t.equal(decide(p, facts({ method: 'PATCH' })).reason, 'method_not_allowed')
})

t.test('header_not_allowed: case-insensitive, safelisted headers need no listing', async (t) => {
  const p = policyOf({ ...BASE, allowHeaders: ['Content-Type', 'X-CSRF-TOKEN'] })
  for (const requestHeaders of ['content-type', 'CONTENT-TYPE,x-csrf-token', 'x-csrf-token, content-type', 'accept,accept-language,content-language,range', 'Accept, Range', '', ' , ']) {
    t.match(decide(p, facts({ method: 'POST', requestHeaders })), { allowed: true, reason: 'origin_allowed' }, JSON.stringify(requestHeaders))
  }
  const d = decide(p, facts({ method: 'POST', requestHeaders: 'content-type,Authorization' }))
  t.match(d, { allowed: false, reason: 'header_not_allowed', detail: 'authorization', rule: 'https://app.example.com', reject: true, allowOrigin: undefined })
  t.match(decide(p, facts({ requestHeaders: 'x-custom' })), { reason: 'header_not_allowed', detail: 'x-custom' })
  // A header is listed or not by its whole name: no prefix or substring slips through.
  t.match(decide(p, facts({ requestHeaders: 'content-type-x' })), { reason: 'header_not_allowed' })
  t.match(decide(p, facts({ requestHeaders: 'x-csrf' })), { reason: 'header_not_allowed' })
})

t.test('header check: allowHeaders "*" allows any requested header', async (t) => {
  const p = policyOf({ ...BASE, allowHeaders: '*' })
  t.match(decide(p, facts({ requestHeaders: 'x-anything, authorization' })), { allowed: true })
})

t.test('method is checked before headers', async (t) => {
  const p = policyOf({ ...BASE, methods: ['GET'], allowHeaders: [] })
  t.equal(decide(p, facts({ method: 'PUT', requestHeaders: 'x-a' })).reason, 'method_not_allowed')
})

t.test('"*" without credentials: every origin, Access-Control-Allow-Origin "*"', async (t) => {
  const p = policyOf({ origins: ['*'], credentials: false })
  t.equal(p.allowAll, true)
  t.equal(p.varyOrigin, false, 'the answer does not depend on the origin')
  t.match(decide(p, facts({ origin: 'https://anyone.test' })), { allowed: true, reason: 'origin_allowed', rule: '*', allowOrigin: '*' })
  t.match(decide(p, facts({ origin: 'null' })), { allowed: true, allowOrigin: '*' })
  t.match(decide(p, facts({ origin: undefined })), { allowed: true, reason: 'no_origin', allowOrigin: '*' })
  t.match(decide(p, facts({ origin: 'https://anyone.test', method: 'TRACE' })), { allowed: false, reason: 'method_not_allowed' }, 'methods still apply')
})

t.test('"*" with a deny list still varies by origin', async (t) => {
  const p = policyOf({ origins: ['*'], deny: ['https://evil.com'], credentials: false })
  t.equal(p.varyOrigin, true)
  t.match(decide(p, facts({ origin: 'https://evil.com' })), { allowed: false, reason: 'denylisted' })
  t.match(decide(p, facts({ origin: 'https://good.com' })), { allowed: true, allowOrigin: '*' })
})

t.test('a list policy always varies by origin', async (t) => {
  t.equal(policyOf(BASE).varyOrigin, true)
  t.equal(policyOf(BASE).allowAll, false)
})

t.test('expiring entries are judged at `now`', async (t) => {
  const config = policySchema.parse({ origins: [] })
  const errors: EntryError[] = []
  const allow = parseEntries([{ value: 'https://pr-1.example.com', source: 'redis-expiring', where: 'k', expiresAt: NOW + 1000 }], errors)
  const p = compilePolicy({ name: 'p', config, allow, deny: [] }, errors)
  t.equal(p.nextExpiry, NOW + 1000)
  t.match(decide(p, facts({ origin: 'https://pr-1.example.com', now: NOW })), { allowed: true, ruleSource: 'redis-expiring' })
  t.match(decide(p, facts({ origin: 'https://pr-1.example.com', now: NOW + 1000 })), { allowed: false, reason: 'origin_not_allowed' })
})

t.test('modes', async (t) => {
  const denials: Array<[string, Partial<RequestFacts>, Record<string, unknown>]> = [
    ['origin_not_allowed', { origin: 'https://evil.com' }, {}],
    ['denylisted', { origin: 'https://bad.example.com' }, {}],
    ['method_not_allowed', { method: 'DELETE' }, {}],
    ['header_not_allowed', { requestHeaders: 'x-nope' }, {}],
    ['no_origin_denied', { origin: undefined }, { noOrigin: 'deny' }]
  ]
  for (const [reason, f, extra] of denials) {
    const raw = { ...BASE, deny: ['https://bad.example.com'], methods: ['GET'], allowHeaders: ['Content-Type'], ...extra }

    const enforce = decide(policyOf({ ...raw, mode: 'enforce' }), facts(f))
    t.match(enforce, { allowed: false, reason, outcome: 'denied', reject: true, allowOrigin: undefined }, `enforce ${reason}: 403, no CORS headers`)

    const report = decide(policyOf({ ...raw, mode: 'report-only' }), facts(f))
    t.match(report, { allowed: false, reason, outcome: 'would_deny', reject: false }, `report-only ${reason}: served, counted as would_deny`)
    t.equal(report.allowOrigin, facts(f).origin, `report-only ${reason}: served as if allowed`)

    const headersOnly = decide(policyOf({ ...raw, mode: 'headers-only' }), facts(f))
    t.match(headersOnly, { allowed: false, reason, outcome: 'denied', reject: false, allowOrigin: undefined }, `headers-only ${reason}: forwarded without CORS headers`)
  }
  for (const mode of ['enforce', 'report-only', 'headers-only']) {
    const ok = decide(policyOf({ ...BASE, mode }), facts({}))
    t.match(ok, { allowed: true, outcome: 'allowed', reject: false, allowOrigin: 'https://app.example.com' }, `${mode}: an allowed request is the same in every mode`)
  }
  t.equal(policyOf(BASE).mode, 'enforce', 'enforce is the default')
})
