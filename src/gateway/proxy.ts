// Forwarding through @fastify/reply-from (undici underneath), for what the direct path
// (forward.ts) declines: request bodies, Socket.IO handshakes on balanced routes, and any
// request it leaves to Fastify. One catch-all route serves every configured route: the route
// table picks the upstream per request, so the route that was judged is always the route that
// is forwarded to.
//
// reply-from is registered directly rather than through @fastify/http-proxy: http-proxy's
// handler re-validated every path and built three URL objects per request (5 % of a proxied
// GET's CPU in a profile) for checks that cors.ts makes in onRequest (`AMBIGUOUS_PATH`) and
// reply-from repeats (`buildURL` keeps the destination on the upstream). Its other per-request
// step, stripping invalid characters from upstream header values, is kept (upstream-headers.ts).
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { pipeline, Transform, type TransformCallback } from 'node:stream'
import replyFrom from '@fastify/reply-from'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Agent } from 'undici'
import { forwarded } from './forwarded.js'
import { PayloadTooLargeError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js'
import { pickUpstream, PROXIED_METHODS } from './forward.js'
import type { Route } from './route-table.js'
import { upstreamRequestHeaders, upstreamResponseHeaders } from './upstream-headers.js'
import { isEngineHandshake, isRefusal, SidSniffer, stickyCookie } from './upstream-pool.js'
import type { GatewayContext } from './context.js'

export type ProxyOptions = Pick<GatewayContext, 'config' | 'metrics' | 'logger'> & { agent: Agent }

const kBodyTooLarge = Symbol('corsgate.bodyTooLarge')
const kUpstream = Symbol('corsgate.upstream')
type LimitedRequest = IncomingMessage & { [kBodyTooLarge]?: boolean, [kUpstream]?: number }

/** Chooses among the route's upstreams (src/gateway/upstream-pool.ts) and remembers the choice. */
function chooseUpstream (request: FastifyRequest, trustProxy: boolean): string {
  const route = request.corsgate!.route!
  const i = pickUpstream(route, request.raw, trustProxy)
  ;(request.raw as LimitedRequest)[kUpstream] = i
  return route.upstreams[i]!
}

async function proxyPlugin (app: FastifyInstance, opts: ProxyOptions): Promise<void> {
  const { config, metrics, logger, agent } = opts
  const trustProxy = config.server.trustProxy
  const bodyLimit = config.server.bodyLimit

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
    getUpstream: (request: FastifyRequest) => chooseUpstream(request, trustProxy),
    // Laravel's maintenance mode answers 503: pass it through once, never retry.
    retryDelay: () => null,
    rewriteRequestHeaders: (request: FastifyRequest, headers: IncomingHttpHeaders) => upstreamRequestHeaders(request.raw, headers, trustProxy),
    rewriteHeaders: (headers: IncomingHttpHeaders, request: FastifyRequest) => upstreamResponseHeaders(headers, request.corsgate?.policy.config.stripUpstreamCors !== false),
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
  for (const url of ['/', '/*']) app.route({ method: [...PROXIED_METHODS], url, handler, logLevel: 'error' })
}

function isSecure (request: FastifyRequest, trustProxy: boolean): boolean {
  return forwarded(request.raw, trustProxy).proto.split(',')[0]!.trim() === 'https'
}

function appendCookie (prior: string | number | string[] | undefined, cookie: string): string[] {
  if (prior === undefined) return [cookie]
  return Array.isArray(prior) ? [...prior, cookie] : [String(prior), cookie]
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
