// The headers that cross the proxy (forward.ts), both ways: what a proxy must not pass on
// (RFC 9110 §7.6.1), the X-Forwarded-* it adds (SPEC.md "Actual requests"), and the upstream's
// own Access-Control-* it removes.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { forwarded } from './forwarded.js'

// Request headers that describe the client's connection to us, not ours to the upstream, plus
// `Expect`: Node has already answered `100 Continue` to the client. Passed on, undici refused
// `Keep-Alive`, `Upgrade` and `Expect` outright (a 502 for a curl or Guzzle upload of more than
// 1 KiB), and a client's `Connection: close` closed the pooled upstream connection.
const REQUEST_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'expect'])
// Ours to set (below); the client's values count only behind a trusted proxy, via forwarded().
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'])
// RFC 7239 `Forwarded` is not set by corsgate: a client's passes only behind a trusted proxy,
// like its X-Forwarded-* (a spoofed one would tell the upstream a false client address).
const RFC_FORWARDED = 'forwarded'

/**
 * The request headers for the upstream, as a new object: the client's without hop-by-hop
 * headers and those its `Connection` names, with X-Forwarded-For, -Proto and -Host from
 * forwarded(), and `Host` set to the upstream's. `Origin` passes.
 */
export function upstreamRequestHeaders (req: IncomingMessage, trustProxy: boolean, host: string): IncomingHttpHeaders {
  const headers = req.headers
  const connection = headers.connection
  const named = typeof connection === 'string' && !PLAIN_CONNECTION.has(connection.toLowerCase()) ? connectionOptions(connection) : undefined
  const out: IncomingHttpHeaders = {}
  for (const name in headers) {
    if (REQUEST_HOP_BY_HOP.has(name) || FORWARDED.has(name) || named?.has(name) === true) continue
    if (name === RFC_FORWARDED && !trustProxy) continue
    out[name] = headers[name]
  }
  out.host = host
  const f = forwarded(req, trustProxy)
  out['x-forwarded-for'] = f.for
  out['x-forwarded-proto'] = f.proto
  if (f.host !== undefined) out['x-forwarded-host'] = f.host
  return out
}

// Response headers about the upstream connection. Copied through, the upstream's
// `Connection: keep-alive` overrode a client's `Connection: close` (Node then kept the client
// socket open) and its `Keep-Alive: timeout=5` described the upstream connection, not ours.
// `Transfer-Encoding` is Node's to choose for the client connection; trailers are not relayed,
// so no `Trailer` announces them (Node refuses one on a response it does not chunk).
const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'trailer', 'te', 'upgrade'])
const PLAIN_CONNECTION = new Set(['keep-alive', 'close'])

// An upstream header value with a character Node refuses (a control character) would make the
// response throw; drop the characters instead, as @fastify/http-proxy does.
const INVALID_HEADER_CHARS = /[^\t\x20-\x7E\x80-\xFF]/g
const HAS_INVALID_HEADER_CHAR = /[^\t\x20-\x7E\x80-\xFF]/

/**
 * The upstream's response headers as the client gets them, built in one pass into a new
 * object (`delete` would turn the object into a slow dictionary on every response): the
 * hop-by-hop headers and those its `Connection` names go, its own `Access-Control-*` go
 * unless the policy keeps them, and characters Node refuses are dropped from values.
 */
export function upstreamResponseHeaders (headers: IncomingHttpHeaders, stripCors: boolean): IncomingHttpHeaders {
  const connection = headers.connection
  // `keep-alive` and `close`, what upstreams send, name no header beyond the hop-by-hop set.
  const named = typeof connection === 'string' && !PLAIN_CONNECTION.has(connection.toLowerCase()) ? connectionOptions(connection) : undefined
  const out: IncomingHttpHeaders = {}
  for (const name in headers) {
    if (RESPONSE_HOP_BY_HOP.has(name) || named?.has(name) === true) continue
    if (stripCors && name.startsWith('access-control-')) continue
    const value = headers[name]
    out[name] = typeof value === 'string' ? validHeaderValue(value) : Array.isArray(value) ? value.map(validHeaderValue) : value
  }
  return out
}

/** The option headers a `Connection` value names; framing stays with Node and undici. */
function connectionOptions (connection: string): Set<string> {
  const names = new Set<string>()
  for (const token of connection.toLowerCase().split(',')) {
    const name = token.trim()
    if (name !== '' && name !== 'transfer-encoding' && name !== 'content-length') names.add(name)
  }
  return names
}

function validHeaderValue (value: string): string {
  return HAS_INVALID_HEADER_CHAR.test(value) ? value.replace(INVALID_HEADER_CHARS, '') : value
}
