// What goes to an upstream, for proxied requests (forward.ts) and websocket upgrades
// (websocket/handshake.ts) alike: one rule set for the headers that cross the proxy both ways
// (RFC 9110 §7.6.1 hop-by-hop, the X-Forwarded-* corsgate adds, the upstream's own
// Access-Control-* it removes), where each upstream URL points, and how its TLS is verified.
import { readFileSync } from 'node:fs'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import type { Config } from '../config/schema.js'
import { forwarded } from './forwarded.js'
import { Agent, buildConnector } from './undici-agent.js'

/** Where requests for one upstream URL go. */
export interface UpstreamTarget {
  /** `scheme://host[:port]`, for undici. */
  origin: string
  /** The `Host` the upstream is sent. */
  host: string
  /** For node:http: the hostname without IPv6 brackets, the port, TLS or not. */
  hostname: string
  port: number | undefined
  secure: boolean
  /**
   * The TLS server name, sent with every request: the upstream URL's host, whatever `Host`
   * the request carries, so a preserved client `Host` neither changes which certificate is
   * verified nor makes undici reconnect when two requests carry different ones.
   */
  servername: string
}

/** The settings every upstream connection shares, read once from the config. */
export class UpstreamRules {
  readonly trustProxy: boolean
  /** The CA bundle upstream certificates are verified against, when not the system's. */
  readonly ca: Buffer | undefined
  private readonly targets = new Map<string, UpstreamTarget>()

  constructor (config: Config) {
    this.trustProxy = config.server.trustProxy
    this.ca = config.server.upstreamCaFile === undefined ? undefined : readFileSync(config.server.upstreamCaFile)
  }

  /** TLS options for a connection to an https upstream: always verified. */
  get tls (): { rejectUnauthorized: true, ca?: Buffer } {
    return this.ca === undefined ? { rejectUnauthorized: true } : { rejectUnauthorized: true, ca: this.ca }
  }

  /** The undici agent of proxied requests: a keep-alive pool per upstream. */
  createAgent (connections: number): InstanceType<typeof Agent> {
    const connect = buildConnector(this.tls)
    return new Agent({
      connections,
      pipelining: 1,
      // Below the usual upstream keep-alive (Node 5 s, nginx 75 s, Apache 5 s), so we never
      // reuse a socket the upstream is about to close.
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 4_000,
      // No SNI for an upstream given by IP address (RFC 6066 allows only names): its
      // certificate is verified against the address.
      connect: (options, callback) => connect(isIP(options.hostname) === 0 ? options : { ...options, servername: undefined }, callback)
    })
  }

  target (upstream: string): UpstreamTarget {
    let target = this.targets.get(upstream)
    if (target === undefined) {
      const url = new URL(upstream)
      const secure = url.protocol === 'https:'
      const hostname = url.hostname.replace(/^\[|\]$/g, '')
      target = { origin: url.origin, host: url.host, hostname, port: url.port === '' ? undefined : Number(url.port), secure, servername: hostname }
      this.targets.set(upstream, target)
    }
    return target
  }

  /** The request headers for `target` (see `upstreamRequestHeaders`). */
  requestHeaders (req: IncomingMessage, target: UpstreamTarget, hostHeader: 'client' | 'upstream', upgrade: boolean): IncomingHttpHeaders {
    const host = hostHeader === 'client' ? req.headers.host ?? target.host : target.host
    return upstreamRequestHeaders(req, this.trustProxy, host, upgrade)
  }
}

// Request headers that describe the client's connection to us, not ours to the upstream, plus
// `Expect`: Node has already answered `100 Continue` to the client. Passed on, undici refused
// `Keep-Alive`, `Upgrade` and `Expect` outright, and a client's `Connection: close` closed the
// pooled upstream connection.
const REQUEST_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'expect'])
// Ours to set (below); the client's values count only behind a trusted proxy, via forwarded().
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'])
// RFC 7239 `Forwarded` is not set by corsgate: a client's passes only behind a trusted proxy,
// like its X-Forwarded-* (a spoofed one would tell the upstream a false client address).
const RFC_FORWARDED = 'forwarded'

/**
 * The request headers for the upstream, as a new object: the client's without hop-by-hop
 * headers and those its `Connection` names, with X-Forwarded-For, -Proto and -Host from
 * forwarded(), and `Host` set to `host` (the client's or the upstream's, by route). `Origin`,
 * `Cookie`, `Authorization` pass.
 * An upgrade keeps `Connection: Upgrade` and `Upgrade` (RFC 9110 §7.8: the handshake is
 * addressed to the upstream) and every `Sec-WebSocket-*` header.
 */
export function upstreamRequestHeaders (req: IncomingMessage, trustProxy: boolean, host: string, upgrade = false): IncomingHttpHeaders {
  const headers = req.headers
  const connection = headers.connection
  const named = typeof connection === 'string' && !PLAIN_CONNECTION.has(connection.toLowerCase()) ? connectionOptions(connection) : undefined
  const out: IncomingHttpHeaders = {}
  for (const name in headers) {
    if (REQUEST_HOP_BY_HOP.has(name) || FORWARDED.has(name) || named?.has(name) === true) continue
    if (name === RFC_FORWARDED && !trustProxy) continue
    // HTTP/2 pseudo-headers (`:authority`, `:path`…) describe the client's request line; the
    // upstream request is HTTP/1.1 with its own.
    if (name.charCodeAt(0) === 0x3a) continue
    out[name] = headers[name]
  }
  if (upgrade) {
    out.connection = 'Upgrade'
    out.upgrade = headers.upgrade
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
