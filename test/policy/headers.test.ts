// The CORS response header sets (SPEC.md "Preflight", "Actual requests"): preflightHeaders(),
// actualHeaders(), appendVaryOrigin().
import t from 'tap'
import { policySchema } from '../../src/config/schema.js'
import { compilePolicy, parseEntries, type CompiledPolicy, type EntryError } from '../../src/policy/compile.js'
import { decide } from '../../src/policy/decide.js'
import { actualHeaders, appendVaryOrigin, PREFLIGHT_VARY, preflightHeaders } from '../../src/policy/headers.js'

const NOW = 1_700_000_000_000
const APP = 'https://app.example.com'

function policyOf (raw: Record<string, unknown>): CompiledPolicy {
  const config = policySchema.parse(raw)
  const errors: EntryError[] = []
  const toRaw = (list: string[]) => list.map((value, i) => ({ value, source: 'file', where: `policies.p.origins[${i}]` }))
  const policy = compilePolicy({ name: 'p', config, allow: parseEntries(toRaw(config.origins), errors), deny: parseEntries(toRaw(config.deny), errors) }, errors)
  if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('\n'))
  return policy
}

/** The headers of a preflight for `origin`, as the gateway would build them. */
function preflight (p: CompiledPolicy, origin: string, method: string, requestHeaders?: string, privateNetwork = false) {
  const d = decide(p, { origin, selfOrigin: undefined, method, requestHeaders, now: NOW })
  return preflightHeaders(p, d, { requestHeaders, privateNetwork })
}

t.test('an allowed preflight: the full header set', async (t) => {
  const p = policyOf({ origins: [APP], maxAge: 600 })
  t.same(preflight(p, APP, 'PUT', 'content-type,authorization'), {
    vary: PREFLIGHT_VARY,
    'content-length': '0',
    'access-control-allow-origin': APP,
    'access-control-allow-credentials': 'true',
    'access-control-allow-methods': 'GET, HEAD, POST, PUT, PATCH, DELETE',
    'access-control-allow-headers': 'Content-Type, Authorization, X-Requested-With, X-CSRF-TOKEN, X-XSRF-TOKEN',
    'access-control-max-age': '600'
  })
  t.equal(PREFLIGHT_VARY, 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers')
})

t.test('no max-age header unless maxAge is set; no credentials header unless credentials', async (t) => {
  const h = preflight(policyOf({ origins: [APP], credentials: false }), APP, 'PUT')
  t.notOk('access-control-max-age' in h)
  t.notOk('access-control-allow-credentials' in h)
  t.equal(preflight(policyOf({ origins: [APP], maxAge: 0 }), APP, 'PUT')['access-control-max-age'], '0', 'maxAge 0 is sent: it disables caching')
})

t.test('a denied preflight carries Vary and nothing of Access-Control-Allow-*', async (t) => {
  const p = policyOf({ origins: [APP], maxAge: 600, privateNetwork: true })
  for (const h of [
    preflight(p, 'https://evil.com', 'PUT', 'content-type', true),
    preflight(p, APP, 'TRACE', undefined, true),
    preflight(p, APP, 'PUT', 'x-not-listed', true)
  ]) {
    t.same(h, { vary: PREFLIGHT_VARY, 'content-length': '0' })
  }
})

t.test('allowHeaders "*" echoes the requested list and never sends a literal "*"', async (t) => {
  for (const credentials of [true, false]) {
    const p = policyOf({ origins: [APP], allowHeaders: '*', credentials })
    const h = preflight(p, APP, 'PUT', 'x-custom,authorization,content-type')
    t.equal(h['access-control-allow-headers'], 'x-custom,authorization,content-type', `credentials ${credentials}: echoed as requested`)
    const none = preflight(p, APP, 'PUT')
    t.notOk('access-control-allow-headers' in none, `credentials ${credentials}: nothing requested, nothing sent`)
    t.notOk('access-control-allow-headers' in preflight(p, APP, 'PUT', ''), 'an empty request list sends nothing')
    for (const value of Object.values(h)) t.not(value, '*', 'no literal "*" anywhere')
  }
  const star = policyOf({ origins: ['*'], allowHeaders: '*', credentials: false })
  t.equal(preflight(star, APP, 'PUT', 'x-a')['access-control-allow-headers'], 'x-a', 'even on a "*" policy the list is echoed')
})

t.test('a listed allowHeaders is sent as configured, whatever was requested', async (t) => {
  const p = policyOf({ origins: [APP], allowHeaders: ['X-A', 'X-B'] })
  t.equal(preflight(p, APP, 'PUT', 'x-a')['access-control-allow-headers'], 'X-A, X-B')
  t.equal(preflight(p, APP, 'PUT')['access-control-allow-headers'], 'X-A, X-B')
  t.notOk('access-control-allow-headers' in preflight(policyOf({ origins: [APP], allowHeaders: [] }), APP, 'PUT'), 'an empty list sends no header')
})

t.test('a "*" policy without credentials sends "*"', async (t) => {
  const p = policyOf({ origins: ['*'], credentials: false })
  const h = preflight(p, 'https://anyone.test', 'PUT', 'content-type')
  t.equal(h['access-control-allow-origin'], '*')
  t.notOk('access-control-allow-credentials' in h)
  const actual = actualHeaders(p, decide(p, { origin: 'https://anyone.test', selfOrigin: undefined, method: 'GET', now: NOW }))
  t.same(actual, { 'access-control-allow-origin': '*' })
})

t.test('a listed origin on a credentialed policy is echoed, never "*"', async (t) => {
  const p = policyOf({ origins: [APP] })
  t.equal(preflight(p, APP, 'PUT')['access-control-allow-origin'], APP)
})

t.test('private network access', async (t) => {
  const on = policyOf({ origins: [APP], privateNetwork: true })
  const off = policyOf({ origins: [APP] })
  t.equal(preflight(on, APP, 'GET', undefined, true)['access-control-allow-private-network'], 'true', 'asked and on')
  t.notOk('access-control-allow-private-network' in preflight(on, APP, 'GET', undefined, false), 'on but not asked')
  t.notOk('access-control-allow-private-network' in preflight(off, APP, 'GET', undefined, true), 'asked but off')
  t.notOk('access-control-allow-private-network' in preflight(on, 'https://evil.com', 'GET', undefined, true), 'asked and on, origin denied')
})

t.test('actual responses: allow-origin, credentials, expose-headers', async (t) => {
  const p = policyOf({ origins: [APP], exposeHeaders: ['X-Request-Id', 'ETag'] })
  const d = decide(p, { origin: APP, selfOrigin: undefined, method: 'GET', now: NOW })
  t.same(actualHeaders(p, d), {
    'access-control-allow-origin': APP,
    'access-control-allow-credentials': 'true',
    'access-control-expose-headers': 'X-Request-Id, ETag'
  })
  const plain = policyOf({ origins: [APP], credentials: false })
  t.same(actualHeaders(plain, decide(plain, { origin: APP, selfOrigin: undefined, method: 'GET', now: NOW })), { 'access-control-allow-origin': APP }, 'no expose header when none listed')
  t.equal(actualHeaders(p, decide(p, { origin: 'https://evil.com', selfOrigin: undefined, method: 'GET', now: NOW })), undefined, 'denied: none')
  t.equal(actualHeaders(p, decide(p, { origin: undefined, selfOrigin: undefined, method: 'GET', now: NOW })), undefined, 'no origin: none')
})

t.test('actual responses in the three modes', async (t) => {
  for (const [mode, expected] of [['enforce', undefined], ['headers-only', undefined], ['report-only', 'https://evil.com']] as const) {
    const p = policyOf({ origins: [APP], mode })
    const h = actualHeaders(p, decide(p, { origin: 'https://evil.com', selfOrigin: undefined, method: 'GET', now: NOW }))
    t.equal(h?.['access-control-allow-origin'], expected, mode)
  }
})

t.test('Vary: Origin is appended, never replacing', async (t) => {
  const cases: Array<[string | undefined, string]> = [
    [undefined, 'Origin'],
    ['', 'Origin'],
    ['Accept-Encoding', 'Accept-Encoding, Origin'],
    ['Accept-Encoding, Accept-Language', 'Accept-Encoding, Accept-Language, Origin'],
    ['Origin', 'Origin'],
    ['origin', 'origin'],
    ['Accept-Encoding, ORIGIN', 'Accept-Encoding, ORIGIN'],
    ['Accept-Encoding,Origin ', 'Accept-Encoding,Origin '],
    ['*', '*'],
    [' * ', ' * '],
    ['Origins', 'Origins, Origin'],
    ['X-Origin', 'X-Origin, Origin']
  ]
  for (const [vary, expected] of cases) t.equal(appendVaryOrigin(vary), expected, JSON.stringify(vary))
})

t.test('precomputed header values', async (t) => {
  const p = policyOf({ origins: [APP], methods: ['GET', 'PUT'], allowHeaders: ['X-A'], exposeHeaders: ['X-B'], maxAge: 7200 })
  t.same(p.headerValues, { allowMethods: 'GET, PUT', allowHeaders: 'X-A', maxAge: '7200', exposeHeaders: 'X-B' })
  t.same([...(p.allowHeaders as Set<string>)], ['x-a'], 'header names compared in lower case')
})
