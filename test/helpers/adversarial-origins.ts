// The origin grammar's adversarial cases (SPEC "Origin patterns"), against one policy: every
// way an attacker shapes an `Origin` to pass for an allowed one, and the origins that do pass.
// Shared by the standalone gateway's, the Fastify plugin's and the @fastify/cors delegator's tests.

export const ADVERSARIAL_POLICY = { origins: ['https://app.example.com', 'https://*.example.com', 'http://localhost:*'] }

export const REFUSED_ORIGINS = [
  'https://app.example.com.evil.com', 'https://evilexample.com', 'https://example.com.evil.com',
  'https://example.com', 'http://app.example.com', 'https://app.example.com:8443', 'https://app.example.com:443',
  'https://app.example.com/', 'https://app.example.com/x', 'https://app.example.com?x', 'https://app.example.com#x',
  'https://app.example.com.', 'https://evil.com@app.example.com', 'https://app.example.com@evil.com',
  'null', 'Null', 'NULL', 'https://APP.example.com', 'HTTPS://app.example.com',
  'https://app.example.com`', 'https://app.example.com_', 'https://app.example.com!', 'https://app.example.com}',
  'https://app.example.com%60.evil.com', 'https://app.example.com_.evil.com',
  'https://app.example.com, https://evil.com', 'https://app.example.com https://evil.com',
  '*', 'https://*.example.com', 'http://localhost:*', 'http://localhost:80', 'http://localhost:0x50', ''
]

export const ALLOWED_ORIGINS = ['https://app.example.com', 'https://a.b.example.com', 'https://xn--pp-8cd.example.com', 'http://localhost:3000', 'http://localhost']

const ORIGIN = 'https://app.example.com'

/**
 * Origin header lines as an attacker writes them on the wire (test/helpers/raw-http.ts sends
 * them byte for byte), against a policy of `https://app.example.com` and `https://*.example.com`.
 * Each is refused, except `LONG_ALLOWED_SUBDOMAIN`, a real origin under the wildcard.
 */
export const ABUSIVE_ORIGIN_LINES: Array<[string, string]> = [
  ['two Origin lines, the allowed one second', `Origin: https://evil.example\r\nOrigin: ${ORIGIN}\r\n`],
  ['two Origin lines, the allowed one first', `Origin: ${ORIGIN}\r\nOrigin: https://evil.example\r\n`],
  ['the same allowed Origin twice', `Origin: ${ORIGIN}\r\nOrigin: ${ORIGIN}\r\n`],
  ['a comma list', `Origin: ${ORIGIN}, https://evil.example\r\n`],
  ['a comma list without a space', `Origin: ${ORIGIN},https://evil.example\r\n`],
  ['a space-separated list (an origin list of the old RFC 6454)', `Origin: ${ORIGIN} https://evil.example\r\n`],
  ['a tab inside the value', 'Origin: https://app.example.com\thttps://evil.example\r\n'],
  ['a trailing dot on the host', 'Origin: https://app.example.com.\r\n'],
  ['upper case', 'Origin: HTTPS://APP.EXAMPLE.COM\r\n'],
  ['an explicit default port', 'Origin: https://app.example.com:443\r\n'],
  ['a trailing slash', 'Origin: https://app.example.com/\r\n'],
  ['userinfo', 'Origin: https://evil.example@app.example.com\r\n'],
  ['a suffix that only ends like an allowed one', 'Origin: https://evilexample.com\r\n'],
  ['a wildcard match with a path', 'Origin: https://a.example.com/x\r\n'],
  ['latin-1 bytes', 'Origin: https://app.ex\u00e4mple.com\r\n'],
  ['full-width letters (UTF-8 bytes)', `Origin: ${Buffer.from('https://ａpp.example.com', 'utf8').toString('latin1')}\r\n`],
  ['8 KiB of Origin', `Origin: https://${'a'.repeat(8 * 1024)}.evil.example\r\n`],
  ['8 KiB of Origin under an allowed wildcard', `Origin: https://${'a.'.repeat(4 * 1024)}example.com\r\n`],
  ['the literal null (not listed)', 'Origin: null\r\n'],
  ['an empty Origin', 'Origin: \r\n']
]

export const LONG_ALLOWED_SUBDOMAIN = '8 KiB of Origin under an allowed wildcard'
