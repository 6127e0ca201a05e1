// Forwarding through @fastify/reply-from (undici underneath). One catch-all route serves every
// configured route: the route table picks the upstream per request, so the route that was
// judged is always the route that is forwarded to.
//
// reply-from is registered directly rather than through @fastify/http-proxy: http-proxy's
// handler re-validated every path and built three URL objects per request (5 % of a proxied
// GET's CPU in a profile) for checks that cors.ts makes in onRequest (`AMBIGUOUS_PATH`) and
// reply-from repeats (`buildURL` keeps the destination on the upstream). Its other per-request
// step, stripping invalid characters from upstream header values, is kept (`responseHeaders`).
import { readFileSync } from 'node:fs'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { pipeline, Transform, type TransformCallback } from 'node:stream'
import replyFrom from '@fastify/reply-from'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Agent } from 'undici'
import type { Config } from '../config/schema.js'
import { forwarded } from './forwarded.js'
import { PayloadTooLargeError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js'
import type { Route } from './route-table.js'
import { clientAddress, cookieValue, engineSid, isEngineHandshake, isRefusal, SidSniffer, STICKY_COOKIE, stickyCookie } from './upstream-pool.js'
import type { GatewayContext } from './context.js'

export type ProxyOptions = Pick<GatewayContext, 'config' | 'metrics' | 'logger'>

const kBodyTooLarge = Symbol('corsgate.bodyTooLarge')
const kUpstream = Symbol('corsgate.upstream')
type LimitedRequest = IncomingMessage & { [kBodyTooLarge]?: boolean, [kUpstream]?: number }

/** Chooses among the route's upstreams (src/gateway/upstream-pool.ts) and remembers the choice. */
function pickUpstream (request: FastifyRequest, trustProxy: boolean): string {
  const route = request.corsgate!.route!
  const raw = request.raw as LimitedRequest
  const i = route.pool.balanced
    ? route.pool.pick(engineSid(raw.url!), cookieValue(raw.headers.cookie, STICKY_COOKIE), Date.now(), clientAddress(raw.socket.remoteAddress, raw.headers['x-forwarded-for'], trustProxy))
    : 0
  raw[kUpstream] = i
  return route.upstreams[i]!
}

/** The undici agent shared by every route: keep-alive pool, TLS always verified. */
export function createUpstreamAgent (config: Config): Agent {
  const ca = config.server.upstreamCaFile === undefined ? undefined : readFileSync(config.server.upstreamCaFile)
  return new Agent({
    connections: config.server.upstreamConnections,
    pipelining: 1,
    // Below the usual upstream keep-alive (Node 5 s, nginx 75 s, Apache 5 s), so we never
    // reuse a socket the upstream is about to close.
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 4_000,
    connect: { rejectUnauthorized: true, ...(ca === undefined ? {} : { ca }) }
  })
}

async function proxyPlugin (app: FastifyInstance, opts: ProxyOptions): Promise<void> {
  const { config, metrics, logger } = opts
  const trustProxy = config.server.trustProxy
  const bodyLimit = config.server.bodyLimit
  const agent = createUpstreamAgent(config)
  // onClose runs once every client connection has ended, so an upstream request still pending
  // (a long-poll whose client was cut at the drain deadline) has no one to answer: destroy,
  // don't wait for it.
  app.addHook('onClose', async () => { await agent.destroy() })

  // Bodies are streamed to the upstream, never buffered. Fastify's own parsers would buffer
  // JSON and text, so every content type goes through this pass-through with a byte cap.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', function (request, payload, done) {
    if (request.headers['content-length'] !== undefined) return done(null, payload) // checked in onRequest
    // pipeline, not pipe: a client that dies mid-body (reset, or a chunk framing error that
    // makes Node destroy the socket) must abort the upstream request too. With pipe() the
    // limiter never ended, and undici held the upstream request and its pooled connection open.
    done(null, pipeline(payload, new ByteLimit(bodyLimit, request.raw as LimitedRequest), () => {}))
  })

  await app.register(replyFrom, { undici: agent, disableRequestLogging: true })
  type FromOptions = NonNullable<Parameters<FastifyReply['from']>[1]>
  const replyOptions = {
    getUpstream: (request: FastifyRequest) => pickUpstream(request, trustProxy),
    // Laravel's maintenance mode answers 503: pass it through once, never retry.
    retryDelay: () => null,
    rewriteRequestHeaders: (request: FastifyRequest, headers: IncomingHttpHeaders) => forwardedHeaders(request, headers, trustProxy),
    rewriteHeaders: (headers: IncomingHttpHeaders, request: FastifyRequest) => responseHeaders(headers, request.corsgate?.policy.config.stripUpstreamCors !== false),
    onError: (reply: FastifyReply, { error }: { error: Error & { statusCode?: number, code?: string } }) => {
      const route = reply.request.corsgate?.route?.label ?? 'none'
      if ((reply.request.raw as LimitedRequest)[kBodyTooLarge] === true) {
        metrics.upstreamErrors.inc({ route, kind: 'body_too_large' })
        return reply.send(new PayloadTooLargeError(String(bodyLimit)))
      }
      const timeout = error.statusCode === 504
      metrics.upstreamErrors.inc({ route, kind: timeout ? 'timeout' : 'unavailable' })
      const picked = (reply.request.raw as LimitedRequest)[kUpstream] ?? 0
      // A refused connection takes the upstream out of rotation (passive health).
      if (isRefusal(error.cause)) reply.request.corsgate?.route?.pool.eject(picked)
      logger.warn({ reqId: reply.request.id, route, upstream: reply.request.corsgate?.route?.upstreams[picked], error: (error.cause as Error | undefined)?.message ?? error.message }, 'upstream error')
      reply.send(timeout ? new UpstreamTimeoutError() : new UpstreamUnavailableError())
    }
  }
  // The route's timeout applies to the response headers and to each gap between body chunks.
  // One options object per route, built once, not spread per request.
  const routeOptions = new Map<Route, FromOptions>()
  const optionsFor = (route: Route): FromOptions => {
    let options = routeOptions.get(route)
    if (options === undefined) {
      options = { ...replyOptions, timeout: route.timeoutMs } as unknown as FromOptions
      routeOptions.set(route, options)
    }
    return options
  }
  const handler = (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    // The path as sent (judged in onRequest); reply-from adds the query from the request URL.
    const dest = request.corsgate!.path
    const route = request.corsgate!.route!
    // Socket.IO stickiness: the handshake response names the session; remember its upstream.
    if (!route.pool.balanced || !isEngineHandshake(request.raw.url!)) return reply.from(dest, optionsFor(route))
    const picked = (request.raw as LimitedRequest)[kUpstream] ?? 0
    return reply.from(dest, {
      ...optionsFor(route),
      onResponse: (req: FastifyRequest, res: FastifyReply, upstream: { stream: NodeJS.ReadableStream }) => {
        const i = (req.raw as LimitedRequest)[kUpstream] ?? picked
        res.header('set-cookie', appendCookie(res.getHeader('set-cookie'), stickyCookie(route.pool.keys[i]!, route.path, isSecure(req, trustProxy))))
        const sniffer = new SidSniffer((sid) => route.pool.learn(sid, i))
        res.send(pipeline(upstream.stream, sniffer, () => {}))
      }
    } as FromOptions)
  }
  // reply-from logs every upstream failure at warn with a stack; ours is one line (onError).
  for (const url of ['/', '/*']) app.route({ method: PROXIED_METHODS, url, handler, logLevel: 'error' })
}

// The methods @fastify/http-proxy forwarded by default; any other method gets the 404 answer.
const PROXIED_METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']

// An upstream header value with a character Node refuses (a control character) would make the
// response throw; drop the characters instead, as @fastify/http-proxy does.
const INVALID_HEADER_CHARS = /[^\t\x20-\x7E\x80-\xFF]/g
const HAS_INVALID_HEADER_CHAR = /[^\t\x20-\x7E\x80-\xFF]/

// SPEC.md "Actual requests": X-Forwarded-For, -Proto, -Host for the upstream; Origin unchanged.
// Without `trustProxy`, client-sent values are replaced, never trusted.
function forwardedHeaders (request: FastifyRequest, headers: IncomingHttpHeaders, trustProxy: boolean): IncomingHttpHeaders {
  const f = forwarded(request.raw, trustProxy)
  headers['x-forwarded-for'] = f.for
  headers['x-forwarded-proto'] = f.proto
  if (f.host === undefined) delete headers['x-forwarded-host']
  else headers['x-forwarded-host'] = f.host
  return headers
}

function isSecure (request: FastifyRequest, trustProxy: boolean): boolean {
  return forwarded(request.raw, trustProxy).proto.split(',')[0]!.trim() === 'https'
}

function appendCookie (prior: string | number | string[] | undefined, cookie: string): string[] {
  if (prior === undefined) return [cookie]
  return Array.isArray(prior) ? [...prior, cookie] : [String(prior), cookie]
}

// RFC 9110 §7.6.1: a proxy removes the hop-by-hop headers of the connection it received a
// message on. Copied through, the upstream's `Connection: keep-alive` overrode a client's
// `Connection: close` (Node then kept the client socket open) and its `Keep-Alive: timeout=5`
// described the upstream connection, not ours. reply-from strips these for HTTP/2 only.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection'])
const PLAIN_CONNECTION = new Set(['keep-alive', 'close'])

/**
 * The upstream's response headers as the client gets them, built in one pass into a new
 * object (`delete` would turn the object into a slow dictionary on every response): the
 * hop-by-hop headers and those its `Connection` names go, its own `Access-Control-*` go
 * unless the policy keeps them, and characters Node refuses are dropped from values.
 */
function responseHeaders (headers: IncomingHttpHeaders, stripCors: boolean): IncomingHttpHeaders {
  const connection = headers.connection
  // `keep-alive` and `close`, what upstreams send, name no header beyond the hop-by-hop set.
  const named = typeof connection === 'string' && !PLAIN_CONNECTION.has(connection.toLowerCase()) ? connectionOptions(connection) : undefined
  const out: IncomingHttpHeaders = {}
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || named?.has(name) === true) continue
    if (stripCors && name.startsWith('access-control-')) continue
    const value = headers[name]
    out[name] = typeof value === 'string' ? validHeaderValue(value) : Array.isArray(value) ? value.map(validHeaderValue) : value
  }
  return out
}

/** The option headers a `Connection` value names; framing stays with Node and reply-from. */
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

/** Passes a chunked body through, failing it once it exceeds `limit` bytes. */
class ByteLimit extends Transform {
  private seen = 0
  constructor (private readonly limit: number, private readonly request: LimitedRequest) {
    super()
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length
    if (this.seen > this.limit) {
      this.request[kBodyTooLarge] = true
      callback(new PayloadTooLargeError(String(this.limit)))
      return
    }
    callback(null, chunk)
  }
}

export const proxy = fp(proxyPlugin, { name: 'corsgate-proxy', fastify: '5.x', dependencies: ['corsgate-cors'] })
