// The origin grammar (SPEC.md "Origin patterns"): what each pattern normalises to, and every
// rejection with a message that names the entry and says what is wrong.
import t from 'tap'
import { OriginPatternError, parseOriginPattern, parseSerializedOrigin } from '../../src/policy/origin-pattern.js'

type Asserts = Pick<typeof t, 'ok' | 'equal' | 'match'>

/** Asserts `input` is rejected with an `OriginPatternError` naming it and matching `reason`. */
function rejects (t: Asserts, input: string, reason: RegExp, extra: { todo?: string } = {}): void {
  let caught: unknown
  try {
    parseOriginPattern(input)
  } catch (err) {
    caught = err
  }
  t.ok(caught instanceof OriginPatternError, `${JSON.stringify(input)} is rejected`, extra)
  if (!(caught instanceof OriginPatternError)) return
  t.equal(caught.pattern, input, 'the error carries the entry', extra)
  t.ok(caught.message.includes(JSON.stringify(input)), `the message names ${JSON.stringify(input)}: ${caught.message}`, extra)
  t.match(caught.message, reason, extra)
}

t.test('the special patterns', async (t) => {
  t.same(parseOriginPattern('*'), { kind: 'any', text: '*' })
  t.same(parseOriginPattern('null'), { kind: 'null', text: 'null' })
  t.same(parseOriginPattern('  null  '), { kind: 'null', text: 'null' }, 'surrounding blanks of a config value are trimmed')
})

t.test('exact origins are normalised', async (t) => {
  const cases: Array<[string, string]> = [
    ['https://app.example.com', 'https://app.example.com'],
    ['HTTPS://APP.Example.COM', 'https://app.example.com'],
    ['https://app.example.com:443', 'https://app.example.com'],
    ['http://app.example.com:80', 'http://app.example.com'],
    ['https://app.example.com:80', 'https://app.example.com:80'],
    ['http://app.example.com:443', 'http://app.example.com:443'],
    ['https://app.example.com:08443', 'https://app.example.com:8443'],
    ['wss://app.example.com:443', 'wss://app.example.com'],
    ['http://localhost:3000', 'http://localhost:3000'],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['http://[::1]:3000', 'http://[::1]:3000'],
    ['http://[::1]:80', 'http://[::1]'],
    ['https://bücher.example', 'https://xn--bcher-kva.example'],
    ['https://BÜCHER.example', 'https://xn--bcher-kva.example'],
    ['https://xn--bcher-kva.example', 'https://xn--bcher-kva.example'],
    ['chrome-extension://abcdefghijklmnop', 'chrome-extension://abcdefghijklmnop'],
    ['  https://app.example.com ', 'https://app.example.com']
  ]
  for (const [input, origin] of cases) {
    t.same(parseOriginPattern(input), { kind: 'exact', text: origin, origin }, `${input} → ${origin}`)
  }
})

t.test('subdomain wildcards', async (t) => {
  t.same(parseOriginPattern('https://*.example.com'),
    { kind: 'subdomain', text: 'https://*.example.com', scheme: 'https', suffix: 'example.com', port: '' })
  t.same(parseOriginPattern('HTTPS://*.EXAMPLE.com:443'),
    { kind: 'subdomain', text: 'https://*.example.com', scheme: 'https', suffix: 'example.com', port: '' }, 'upper case and default port normalised')
  t.same(parseOriginPattern('https://*.example.com:8443'),
    { kind: 'subdomain', text: 'https://*.example.com:8443', scheme: 'https', suffix: 'example.com', port: '8443' })
  t.same(parseOriginPattern('https://*.example.com:*'),
    { kind: 'subdomain', text: 'https://*.example.com:*', scheme: 'https', suffix: 'example.com', port: '*' })
  t.same(parseOriginPattern('https://*.bücher.example'),
    { kind: 'subdomain', text: 'https://*.xn--bcher-kva.example', scheme: 'https', suffix: 'xn--bcher-kva.example', port: '' }, 'IDN suffix to punycode')
  t.same(parseOriginPattern('https://*.example.co.uk'),
    { kind: 'subdomain', text: 'https://*.example.co.uk', scheme: 'https', suffix: 'example.co.uk', port: '' }, 'a registrable domain under a multi-label suffix')
  t.same(parseOriginPattern('https://*.me.github.io'),
    { kind: 'subdomain', text: 'https://*.me.github.io', scheme: 'https', suffix: 'me.github.io', port: '' }, 'a registrable name under a private suffix')
  t.same(parseOriginPattern('http://*.localhost'),
    { kind: 'subdomain', text: 'http://*.localhost', scheme: 'http', suffix: 'localhost', port: '' }, 'localhost is a development convenience')
})

t.test('any-port patterns', async (t) => {
  t.same(parseOriginPattern('http://localhost:*'), { kind: 'any-port', text: 'http://localhost:*', scheme: 'http', host: 'localhost' })
  t.same(parseOriginPattern('HTTP://LocalHost:*'), { kind: 'any-port', text: 'http://localhost:*', scheme: 'http', host: 'localhost' })
  t.same(parseOriginPattern('http://[::1]:*'), { kind: 'any-port', text: 'http://[::1]:*', scheme: 'http', host: '[::1]' })
})

t.test('regular expressions are anchored', async (t) => {
  const p = parseOriginPattern('re:https://pr-[0-9]+\\.preview\\.example\\.com')
  t.equal(p.kind, 'regex')
  if (p.kind !== 'regex') return
  t.equal(p.text, 're:https://pr-[0-9]+\\.preview\\.example\\.com', 'the text is kept as written')
  t.ok(p.regex.matches('https://pr-12.preview.example.com'))
  t.notOk(p.regex.matches('https://pr-12.preview.example.com.evil.com'), 'anchored at the end even when the author forgot $')
  t.notOk(p.regex.matches('https://evil.com/https://pr-12.preview.example.com'), 'anchored at the start even when the author forgot ^')

  const explicit = parseOriginPattern('re:^https://pr-[0-9]+\\.preview\\.example\\.com$')
  if (explicit.kind !== 'regex') return t.fail('expected a regex')
  t.ok(explicit.regex.matches('https://pr-7.preview.example.com'))
  t.notOk(explicit.regex.matches('https://pr-7.preview.example.comX'))

  // `^a|b$` is two half-anchored branches as written; the whole alternation must be anchored.
  const alt = parseOriginPattern('re:^https://a\\.example\\.com|https://b\\.example\\.com$')
  if (alt.kind !== 'regex') return t.fail('expected a regex')
  t.ok(alt.regex.matches('https://a.example.com'))
  t.ok(alt.regex.matches('https://b.example.com'))
  t.notOk(alt.regex.matches('https://a.example.com.evil.com'), 'first branch anchored at the end')
  t.notOk(alt.regex.matches('https://evil.com#https://b.example.com'), 'second branch anchored at the start')

  const dollar = parseOriginPattern('re:https://a\\.example\\.com\\$')
  if (dollar.kind !== 'regex') return t.fail('expected a regex')
  t.ok(dollar.regex.matches('https://a.example.com$'), 'an escaped \\$ is a literal, not an anchor to strip')
})

t.test('the anchoring cannot be escaped from inside the source', async (t) => {
  // A textual `^(?:` + source + `)$` wrap could be closed by the source itself ("a)|(b");
  // RE2's full match has no such seam, and the unbalanced ")" is a syntax error.
  rejects(t, 're:https://a\\.example\\.com)|(x', /invalid regular expression/)
  rejects(t, 're:https://a\\.example\\.com)|(?:.*', /invalid regular expression/)
})

t.test('regex rejections', async (t) => {
  rejects(t, 're:', /empty/)
  rejects(t, 're:^https://(pr-[0-9]+', /invalid regular expression/)
  rejects(t, 're:^https://(?<=a)b$', /invalid regular expression/)
  rejects(t, 're:^(https://a)\\1$', /invalid regular expression/)
  rejects(t, `re:${'a'.repeat(600)}`, /longer than 512/)
})

t.test('expressions that backtrack exponentially in a backtracking engine run in linear time under RE2', async (t) => {
  // Each of these takes seconds or hours in V8's RegExp on the near-miss input; RE2 answers
  // in one pass over the input, so they are accepted and answer correctly.
  const nearMiss = `https://${'a'.repeat(5000)}.example.org`
  for (const text of ['re:^(a+)+$', 're:^https://(a*)*\\.example\\.com$', 're:^https://([a-z]+)*\\.example\\.com$', 're:^https://(a|aa)+\\.example\\.com$']) {
    const p = parseOriginPattern(text)
    if (p.kind !== 'regex') { t.fail(`${text}: expected a regex`); continue }
    t.notOk(p.regex.matches(nearMiss), `${text}: near miss refused`)
  }
  const alt = parseOriginPattern('re:^https://(a|aa)+\\.example\\.com$')
  if (alt.kind === 'regex') t.ok(alt.regex.matches('https://aaaa.example.com'))
})

t.test('paths, queries, fragments', async (t) => {
  rejects(t, 'https://app.example.com/', /no path: remove the trailing "\/"/)
  rejects(t, 'https://app.example.com/app', /no path, query or fragment/)
  rejects(t, 'https://app.example.com?x=1', /no path, query or fragment/)
  rejects(t, 'https://app.example.com#top', /no path, query or fragment/)
  rejects(t, 'https://*.example.com/api', /no path, query or fragment/)
  rejects(t, 'http://localhost:*/', /no path/)
})

t.test('userinfo', async (t) => {
  rejects(t, 'https://user@app.example.com', /userinfo/)
  rejects(t, 'https://user:pass@app.example.com', /userinfo/)
  rejects(t, 'https://evil.com@app.example.com', /userinfo/)
  rejects(t, 'https://*.example.com@evil.com', /userinfo/)
})

t.test('a "*" anywhere but a leading label or the port', async (t) => {
  for (const p of [
    'https://*',
    'https://*example.com',
    'https://app*.example.com',
    'https://app.*.example.com',
    'https://*.*.example.com',
    'https://app.example.*',
    'https://**.example.com'
  ]) rejects(t, p, /"\*" is only allowed as the whole leading label/)
  rejects(t, 'https://app.example.com:8*', /invalid port "8\*"/)
  rejects(t, 'https://app.example.com:**', /invalid port/)
  rejects(t, '*://app.example.com', /not an origin/)
  rejects(t, 'http*://app.example.com', /not an origin/)
  rejects(t, '**', /not an origin/)
})

t.test('wildcards over a public suffix', async (t) => {
  for (const [p, suffix] of [
    ['https://*.com', 'com'],
    ['https://*.co.uk', 'co.uk'],
    ['https://*.uk', 'uk'],
    ['https://*.github.io', 'github.io'],
    ['https://*.herokuapp.com', 'herokuapp.com'],
    ['https://*.vercel.app', 'vercel.app'],
    ['https://*.COM', 'com'],
    ['https://*.com:8443', 'com'],
    ['https://*.com:*', 'com']
  ]) rejects(t, p!, new RegExp(`"\\*\\.${suffix!.replace('.', '\\.')}" covers a public suffix`))
  rejects(t, 'http://*.127.0.0.1', /IP address/)
  rejects(t, 'http://*.[::1]', /./)
})

t.test('ports and hosts', async (t) => {
  rejects(t, 'https://app.example.com:', /empty port/)
  rejects(t, 'https://app.example.com:65536', /invalid port "65536"/)
  rejects(t, 'https://app.example.com:123456', /invalid port/)
  rejects(t, 'https://app.example.com:-1', /invalid port/)
  rejects(t, 'https://app.example.com:http', /invalid port/)
  rejects(t, 'https://', /host is empty/)
  rejects(t, 'https://:443', /invalid host|host is empty/)
  rejects(t, 'https://app.example.com.', /trailing dot/)
  rejects(t, 'https://app .example.com', /invalid host/)
  rejects(t, 'https://app..example.com', /invalid host/)
  rejects(t, 'http://[::1', /unterminated IPv6/)
  rejects(t, 'http://[::1]x', /after the IPv6/)
  rejects(t, 'http://[zz]', /invalid IPv6/)
  rejects(t, 'app.example.com', /not an origin/)
  rejects(t, '//app.example.com', /not an origin/)
  rejects(t, 'https:app.example.com', /not an origin/)
  rejects(t, 'Null', /not an origin/)
  rejects(t, '"null"', /not an origin/)
  rejects(t, '', /not an origin/)
})

t.test('a backslash in the host is rejected, never cut off', async (t) => {
  // A regex-style escaped pattern is a common slip; it must fail loudly, not turn into another origin.
  rejects(t, 'https://app\\.example\\.com', /invalid host/)
  rejects(t, 'https://evil.com\\.app.example.com', /invalid host/)
  rejects(t, 'https://app.example.com\\evil', /invalid host|path/)
  rejects(t, 'https://*.example.com\\evil', /invalid host|path/)
})

t.test('IP literals are normalised to the form a browser sends', async (t) => {
  t.equal(parseOriginPattern('http://127.1:3000').text, 'http://127.0.0.1:3000', 'IPv4 shorthand')
  t.equal(parseOriginPattern('http://0x7f.0.0.1').text, 'http://127.0.0.1', 'IPv4 hex')
  // A browser serializes IPv6 compressed and lower-case (URL Standard "IPv6 serializer");
  // a pattern kept in another spelling can never match and is a silently dead entry.
  t.equal(parseOriginPattern('http://[0:0:0:0:0:0:0:1]:3000').text, 'http://[::1]:3000', 'IPv6 compressed')
  t.equal(parseOriginPattern('http://[::ffff:127.0.0.1]').text, 'http://[::ffff:7f00:1]', 'IPv4-mapped IPv6')
  t.equal(parseOriginPattern('http://[::FFFF:7F00:1]').text, 'http://[::ffff:7f00:1]', 'IPv6 lower-cased')
})

t.test('the message is the entry, then the reason', async (t) => {
  const err = t.throws(() => parseOriginPattern('https://app.example.com/x')) as unknown as OriginPatternError
  t.equal(err.name, 'OriginPatternError')
  t.equal(err.message, '"https://app.example.com/x": an origin has no path, query or fragment')
})

t.test('parseSerializedOrigin accepts only the canonical serialization', async (t) => {
  t.same(parseSerializedOrigin('https://app.example.com'), { scheme: 'https', host: 'app.example.com', port: '' })
  t.same(parseSerializedOrigin('http://localhost:3000'), { scheme: 'http', host: 'localhost', port: '3000' })
  t.same(parseSerializedOrigin('http://[::1]:8080'), { scheme: 'http', host: '[::1]', port: '8080' })
  for (const bad of [
    'HTTPS://app.example.com', 'https://APP.example.com', 'https://app.example.com:443', 'http://app.example.com:80',
    'https://app.example.com/', 'https://app.example.com.', 'https://a@app.example.com', 'https://app.example.com:0',
    'https://app.example.com:08443', 'https://app.example.com:65536', 'https://app.example.com, https://evil.com',
    'https://аpp.example.com', 'https://ａｐｐ.example.com', ' https://app.example.com', 'https://app.example.com ',
    'null', '*', ''
  ]) t.equal(parseSerializedOrigin(bad), undefined, JSON.stringify(bad))
})
