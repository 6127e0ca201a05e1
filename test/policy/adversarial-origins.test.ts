// Adversarial Origin values (issue 2, "What must show it"), against the policy
// `https://app.example.com`, `https://*.example.com`, `http://localhost:*`. Each is judged both
// by the matcher and by decide(); an allowed answer must echo the Origin byte for byte.
import t from 'tap'
import { policySchema } from '../../src/config/schema.js'
import { compilePolicy, parseEntries, type CompiledPolicy, type EntryError } from '../../src/policy/compile.js'
import { decide } from '../../src/policy/decide.js'

const NOW = 1_700_000_000_000

function policyOf (raw: Record<string, unknown>, name = 'default'): CompiledPolicy {
  const config = policySchema.parse(raw)
  const errors: EntryError[] = []
  const toRaw = (list: string[]) => list.map((value, i) => ({ value, source: 'file', where: `policies.${name}.origins[${i}]` }))
  const policy = compilePolicy({ name, config, allow: parseEntries(toRaw(config.origins), errors), deny: parseEntries(toRaw(config.deny), errors) }, errors)
  if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('\n'))
  return policy
}

const POLICY = policyOf({ origins: ['https://app.example.com', 'https://*.example.com', 'http://localhost:*'] })
const WITH_NULL = policyOf({ origins: ['https://app.example.com', 'https://*.example.com', 'http://localhost:*', 'null'] })

const REFUSED: Record<string, string[]> = {
  'prefix and suffix tricks': [
    'https://app.example.com.evil.com',
    'https://evilexample.com',
    'https://example.com.evil.com',
    'https://evil.com/https://app.example.com',
    'https://app.example.co',
    'https://app.example.comm',
    'https://xapp.example.co'
  ],
  'the apex against a "*." pattern': ['https://example.com'],
  'http:// downgrade and other schemes': ['http://app.example.com', 'http://a.example.com', 'ws://app.example.com', 'wss://app.example.com', 'https://localhost:3000'],
  'other ports': ['https://app.example.com:8443', 'https://app.example.com:443', 'https://a.example.com:443', 'https://a.example.com:8443', 'http://localhost:80', 'http://localhost:03000', 'http://localhost:99999'],
  'trailing slash, path, query, fragment, trailing dot': [
    'https://app.example.com/',
    'https://app.example.com/x',
    'https://app.example.com?x',
    'https://app.example.com#x',
    'https://app.example.com.',
    'https://a.example.com.',
    'http://localhost:3000/'
  ],
  userinfo: ['https://evil.com@app.example.com', 'https://app.example.com@evil.com', 'https://user:pass@app.example.com', 'http://evil@localhost:3000'],
  'null in its spellings, not listed': ['null', 'Null', 'NULL', ' null', '"null"', 'null '],
  'upper case': ['https://APP.example.com', 'HTTPS://app.example.com', 'https://App.Example.Com', 'HTTP://localhost:3000', 'http://LOCALHOST:3000'],
  'special characters after the host': [
    'https://app.example.com`',
    'https://app.example.com_',
    'https://app.example.com!',
    'https://app.example.com}',
    'https://app.example.com%60.evil.com',
    'https://app.example.com_.evil.com',
    'https://app.example.com$',
    'https://app.example.com\\',
    'https://app.example.com\\.evil.com',
    'https://app.example.com;',
    'https://app.example.com\u0000',
    'https://app.example.com\t',
    'https://app.example.com\r\n'
  ],
  'non-ASCII hosts': [
    'https://аpp.example.com', // Cyrillic а (U+0430)
    'https://ａｐｐ.example.com', // full-width letters, which WHATWG URL would fold to "app"
    'https://app.ехample.com', // Cyrillic е and х in the registrable domain
    'https://app.example.com\u200b', // zero-width space
    'https://bücher.example.com' // an IDN as Unicode: a browser sends the punycode
  ],
  'two Origin values in one header': [
    'https://app.example.com, https://evil.com',
    'https://app.example.com https://evil.com',
    'https://app.example.com,https://evil.com',
    'https://evil.com, https://app.example.com'
  ],
  'the literal pattern text': ['*', 'https://*.example.com', 'http://localhost:*', 'https://*.example.com:*', 're:.*'],
  'empty and blank': ['', ' ', 'https://', 'https:// app.example.com', ' https://app.example.com', 'https://app.example.com ']
}

for (const [klass, origins] of Object.entries(REFUSED)) {
  t.test(`refused: ${klass}`, async (t) => {
    for (const origin of origins) {
      const label = JSON.stringify(origin)
      t.equal(POLICY.allow.match(origin, NOW), undefined, `${label}: the matcher finds nothing`)
      const d = decide(POLICY, { origin, selfOrigin: 'https://gateway.internal', method: 'GET', now: NOW })
      t.equal(d.allowed, false, `${label}: denied`)
      t.equal(d.reason, 'origin_not_allowed', `${label}: origin_not_allowed`)
      t.equal(d.reject, true, `${label}: 403 in enforce`)
      t.equal(d.allowOrigin, undefined, `${label}: no Access-Control-Allow-Origin`)
    }
  })
}

const ALLOWED: Array<[string, string]> = [
  ['https://app.example.com', 'https://app.example.com'],
  ['https://a.b.example.com', 'https://*.example.com'],
  ['https://www.example.com', 'https://*.example.com'],
  ['http://localhost:3000', 'http://localhost:*'],
  ['http://localhost', 'http://localhost:*'],
  // The punycode a browser sends for a Unicode subdomain is an ordinary ASCII label under
  // example.com, and it is judged as that string and nothing else: the host really is a
  // subdomain of example.com (whoever controls example.com's DNS created it), so
  // `*.example.com` covers it exactly as it covers `www`. "xn--pp-6kc" is what a browser sends
  // for "аpp" with a Cyrillic а; "xn--pp-8cd" is another such label. Never decoded, never folded
  // onto "app": it does not match the exact rule `https://app.example.com`.
  ['https://xn--pp-6kc.example.com', 'https://*.example.com'],
  ['https://xn--pp-8cd.example.com', 'https://*.example.com']
]

t.test('allowed controls echo the Origin byte for byte', async (t) => {
  for (const [origin, rule] of ALLOWED) {
    t.equal(POLICY.allow.match(origin, NOW)?.pattern.text, rule, `${origin}: matched by ${rule}`)
    const d = decide(POLICY, { origin, selfOrigin: 'https://gateway.internal', method: 'GET', now: NOW })
    t.equal(d.allowed, true, `${origin}: allowed`)
    t.equal(d.reason, 'origin_allowed')
    t.equal(d.rule, rule, `${origin}: the reason names ${rule}`)
    t.equal(d.allowOrigin, origin, `${origin}: Access-Control-Allow-Origin is the Origin, byte-equal`)
    t.equal(Buffer.compare(Buffer.from(d.allowOrigin ?? ''), Buffer.from(origin)), 0)
  }
})

t.test('null is allowed only when listed, and then only exactly "null"', async (t) => {
  const d = decide(WITH_NULL, { origin: 'null', selfOrigin: undefined, method: 'GET', now: NOW })
  t.equal(d.allowed, true)
  t.equal(d.rule, 'null')
  t.equal(d.allowOrigin, 'null', 'echoed byte for byte')
  for (const spelling of ['Null', 'NULL', ' null', '"null"', 'null ', 'null,null', "'null'", 'nul', 'null\u0000']) {
    const denied = decide(WITH_NULL, { origin: spelling, selfOrigin: undefined, method: 'GET', now: NOW })
    t.equal(denied.allowed, false, `${JSON.stringify(spelling)} is not null`)
    t.equal(denied.allowOrigin, undefined)
  }
  // Every other adversarial origin stays refused when null is listed.
  for (const origins of Object.values(REFUSED)) {
    for (const origin of origins) {
      if (origin === 'null') continue
      t.equal(WITH_NULL.allow.match(origin, NOW), undefined, `${JSON.stringify(origin)} with null listed`)
    }
  }
})

t.test('a denylisted subdomain is refused even though *.example.com allows it', async (t) => {
  const p = policyOf({ origins: ['https://*.example.com'], deny: ['https://evil.example.com', 'https://*.untrusted.example.com'] })
  for (const origin of ['https://evil.example.com', 'https://a.untrusted.example.com']) {
    const d = decide(p, { origin, selfOrigin: undefined, method: 'GET', now: NOW })
    t.equal(d.reason, 'denylisted', origin)
    t.equal(d.allowOrigin, undefined)
  }
  // A deny rule is matched as strictly as an allow rule: a spelling that does not match the
  // deny rule does not match the allow rule either, so nothing slips through between them.
  for (const origin of ['https://EVIL.example.com', 'https://evil.example.com.', 'https://evil.example.com:443']) {
    const d = decide(p, { origin, selfOrigin: undefined, method: 'GET', now: NOW })
    t.equal(d.allowed, false, `${origin}: denied`)
    t.equal(d.allowOrigin, undefined)
  }
})

t.test('a regex rule sees no adversarial spelling either', async (t) => {
  const p = policyOf({ origins: ['re:^https://.*\\.example\\.com$'] })
  t.equal(decide(p, { origin: 'https://a.example.com', selfOrigin: undefined, method: 'GET', now: NOW }).allowOrigin, 'https://a.example.com')
  for (const origin of ['https://evil.com@a.example.com', 'https://evil.com/.example.com', 'https://evil.com#.example.com', 'https://evil.com?.example.com', 'https://A.example.com', 'https://evil.com, https://a.example.com']) {
    t.equal(decide(p, { origin, selfOrigin: undefined, method: 'GET', now: NOW }).allowed, false, JSON.stringify(origin))
  }
})
