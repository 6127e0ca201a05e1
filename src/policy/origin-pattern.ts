// The origin grammar shared by the config file, Redis and the CLI (SPEC.md "Origin patterns").
// Parsing happens once, when a policy is compiled; nothing here runs per request except
// `parseSerializedOrigin`, which only splits a header that is already in canonical form.
import { createRequire } from 'node:module'
import { domainToASCII } from 'node:url'

// Loaded on first use, synchronously (both ship CommonJS builds): only a `*.` wildcard needs
// the public-suffix list and only a `re:` pattern needs RE2, and a process whose policies
// have neither would hold them in memory for nothing.
const require = createRequire(import.meta.url)
let tldts: typeof import('tldts') | undefined
let re2js: typeof import('re2js') | undefined
const publicSuffixList = (): typeof import('tldts') => (tldts ??= require('tldts') as typeof import('tldts'))
const re2 = (): typeof import('re2js') => (re2js ??= require('re2js') as typeof import('re2js'))

export type OriginPattern =
  | { kind: 'any', text: '*' }
  | { kind: 'null', text: 'null' }
  /** One serialized origin, e.g. `https://app.example.com`. */
  | { kind: 'exact', text: string, origin: string }
  /** `scheme://*.suffix[:port]`: any subdomain of `suffix`, at any depth. `port` is `''` for the default port, `'*'` for any. */
  | { kind: 'subdomain', text: string, scheme: string, suffix: string, port: string }
  /** `scheme://host:*`: that host on any port (including the default). */
  | { kind: 'any-port', text: string, scheme: string, host: string }
  /** A full-match RE2 expression: linear time whatever the input, so it cannot stall the event loop. */
  | { kind: 'regex', text: string, regex: { matches: (input: string) => boolean } }

export class OriginPatternError extends Error {
  constructor (readonly pattern: string, reason: string) {
    super(`${JSON.stringify(pattern)}: ${reason}`)
    this.name = 'OriginPatternError'
  }
}

const DEFAULT_PORTS: Record<string, string> = { http: '80', https: '443', ws: '80', wss: '443' }
const PATTERN_SHAPE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s
const MAX_REGEX_SOURCE = 512

/** Parses and normalises one pattern; throws `OriginPatternError` naming what is wrong. */
export function parseOriginPattern (input: string): OriginPattern {
  const text = input.trim()
  if (text === '*') return { kind: 'any', text: '*' }
  if (text === 'null') return { kind: 'null', text: 'null' }
  if (text.startsWith('re:')) return parseRegexPattern(text)

  const shape = PATTERN_SHAPE.exec(text)
  if (shape === null) throw new OriginPatternError(input, 'not an origin: expected scheme://host[:port], "*", "null" or "re:<regex>"')
  const scheme = shape[1]!.toLowerCase()
  const authority = shape[2]!
  const rest = shape[3]!
  if (rest === '/') throw new OriginPatternError(input, 'an origin has no path: remove the trailing "/"')
  if (rest !== '') throw new OriginPatternError(input, 'an origin has no path, query or fragment')
  if (authority.includes('@')) throw new OriginPatternError(input, 'an origin has no userinfo ("user@")')
  if (authority === '') throw new OriginPatternError(input, 'the host is empty')

  const { host: rawHost, port: rawPort } = splitAuthority(input, authority)
  let port = rawPort
  if (port !== '*' && port !== '') {
    if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535 || Number(port) === 0) throw new OriginPatternError(input, `invalid port "${port}"`)
    port = String(Number(port))
    if (DEFAULT_PORTS[scheme] === port) port = ''
  }

  let wildcard = false
  let hostText = rawHost
  if (hostText.startsWith('*.')) {
    wildcard = true
    hostText = hostText.slice(2)
  }
  if (wildcard && hostText.startsWith('[')) throw new OriginPatternError(input, 'a wildcard cannot stand over an IP address')
  if (hostText.includes('*')) throw new OriginPatternError(input, '"*" is only allowed as the whole leading label ("*.example.com") or as the port (":*")')
  const host = normaliseHost(input, hostText)

  if (wildcard) {
    guardWildcardSuffix(input, host)
    return { kind: 'subdomain', text: `${scheme}://*.${host}${port === '' ? '' : `:${port}`}`, scheme, suffix: host, port }
  }
  if (port === '*') return { kind: 'any-port', text: `${scheme}://${host}:*`, scheme, host }
  const origin = `${scheme}://${host}${port === '' ? '' : `:${port}`}`
  return { kind: 'exact', text: origin, origin }
}

function parseRegexPattern (text: string): OriginPattern {
  let source = text.slice(3)
  if (source.length === 0) throw new OriginPatternError(text, 'the regular expression is empty')
  if (source.length > MAX_REGEX_SOURCE) throw new OriginPatternError(text, `the regular expression is longer than ${MAX_REGEX_SOURCE} characters`)
  // RE2 (re2js) runs in time linear in the input, so no expression can backtrack and stall the
  // event loop. `matches()` is a full match: the expression is anchored at both ends whatever
  // the author wrote, and an unbalanced `)|(` is a syntax error rather than a way out.
  if (source.startsWith('^')) source = source.slice(1)
  if (source.endsWith('$') && !source.endsWith('\\$')) source = source.slice(0, -1)
  try {
    return { kind: 'regex', text, regex: re2().RE2JS.compile(source) }
  } catch (err) {
    throw new OriginPatternError(text, `invalid regular expression (RE2 syntax): ${(err as Error).message}`)
  }
}

function splitAuthority (input: string, authority: string): { host: string, port: string } {
  if (authority.startsWith('*.[')) throw new OriginPatternError(input, 'a wildcard cannot stand over an IP address')
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']')
    if (end < 0) throw new OriginPatternError(input, 'unterminated IPv6 address')
    const after = authority.slice(end + 1)
    if (after !== '' && !after.startsWith(':')) throw new OriginPatternError(input, 'unexpected text after the IPv6 address')
    return { host: authority.slice(0, end + 1), port: after.slice(1) }
  }
  const colon = authority.lastIndexOf(':')
  if (colon < 0) return { host: authority, port: '' }
  const port = authority.slice(colon + 1)
  if (port === '') throw new OriginPatternError(input, 'empty port after ":"')
  return { host: authority.slice(0, colon), port }
}

function normaliseHost (input: string, host: string): string {
  if (host.startsWith('[')) {
    if (!/^\[[0-9a-fA-F:.]+\]$/.test(host)) throw new OriginPatternError(input, 'invalid IPv6 address')
    // Config only, never a request header: the URL parser gives the form browsers serialize
    // (`[0:0:0:0:0:0:0:1]` → `[::1]`, `[::ffff:127.0.0.1]` → `[::ffff:7f00:1]`).
    try {
      return new URL(`http://${host}`).hostname
    } catch {
      throw new OriginPatternError(input, 'invalid IPv6 address')
    }
  }
  if (host.endsWith('.')) throw new OriginPatternError(input, 'the host ends with "."; write it without the trailing dot')
  // domainToASCII stops at some characters (`app\\.example.com` → `app`): refuse them first.
  if (/[\\%\s"<>^`{|}]/.test(host)) throw new OriginPatternError(input, `invalid host "${host}": it contains a character no origin can (is this a regular expression? write it as "re:…")`)
  const ascii = domainToASCII(host)
  if (ascii === '' || !/^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(ascii)) throw new OriginPatternError(input, `invalid host "${host}"`)
  return ascii
}

function guardWildcardSuffix (input: string, suffix: string): void {
  if (suffix === 'localhost') return // `http://*.localhost` is a development convenience, never public
  const info = publicSuffixList().parse(suffix, { allowPrivateDomains: true })
  if (info.isIp === true || suffix.startsWith('[')) throw new OriginPatternError(input, 'a wildcard cannot stand over an IP address')
  if (info.domain === null || info.publicSuffix === suffix) {
    throw new OriginPatternError(input, `"*.${suffix}" covers a public suffix: anyone can register a name under "${suffix}"`)
  }
}

export interface SerializedOrigin {
  scheme: string
  host: string
  /** `''` when the origin carries no port (the scheme's default). */
  port: string
}

// A serialized origin as browsers send it (Fetch Standard §3.2.6 and HTML "ASCII serialization
// of an origin"): lower-case scheme and host, ASCII only, no default port, nothing after.
const SERIALIZED = /^([a-z][a-z0-9+.-]*):\/\/([a-z0-9_-]+(?:\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\])(?::([1-9][0-9]{0,4}))?$/

/**
 * Splits an `Origin` header that is already in canonical serialized form. Anything else
 * (upper case, default port, path, userinfo, a list, non-ASCII) returns `undefined`: it is
 * not a serialized origin and can match no pattern. Never a URL parser: WHATWG URL would
 * turn `https://evil.com@app.example.com` into an innocent-looking origin.
 */
export function parseSerializedOrigin (value: string): SerializedOrigin | undefined {
  const m = SERIALIZED.exec(value)
  if (m === null) return undefined
  const scheme = m[1]!
  const port = m[3] ?? ''
  if (port !== '' && (Number(port) > 65535 || DEFAULT_PORTS[scheme] === port)) return undefined
  return { scheme, host: m[2]!, port }
}
