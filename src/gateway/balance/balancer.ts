// Which of a route's upstreams serves a request, and what the answer teaches the pool: the
// forwarder and the websocket handshake ask here and know nothing of Socket.IO.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import type { Route } from '../route-table.js'
import { cookieValue, engineSid, isEngineHandshake, SidSniffer, stickyCookie } from './engine-io.js'
import { clientAddress, isRefusal, STICKY_COOKIE } from './upstream-pool.js'

/**
 * The index of the route's upstream that serves a request: by engine.io session, sticky
 * cookie, client address or rotation. Always 0 for a single upstream.
 */
export function pickUpstream (route: Route, req: IncomingMessage, trustProxy: boolean): number {
  if (!route.pool.balanced) return 0
  return route.pool.pick(engineSid(req.url!), cookieValue(req.headers.cookie, STICKY_COOKIE), Date.now(), clientAddress(req.socket.remoteAddress, req.headers['x-forwarded-for'], trustProxy))
}

/**
 * Called with the head of upstream `upstream`'s answer (before it goes to the client). On a
 * balanced route, a Socket.IO handshake's answer names the session: the pool learns it from the
 * body (the returned observer sees each chunk), and a cookie names the upstream for clients
 * this process does not know (a restart, another replica).
 */
export function upstreamAnswered (route: Route, req: IncomingMessage, upstream: number, head: IncomingHttpHeaders, secure: () => boolean): ((chunk: Buffer) => void) | undefined {
  if (!route.pool.balanced || !isEngineHandshake(req.url!)) return undefined
  const cookie = stickyCookie(route.pool.keys[upstream]!, route.path, secure())
  const prior: string | string[] | undefined = head['set-cookie']
  head['set-cookie'] = prior === undefined ? [cookie] : Array.isArray(prior) ? [...prior, cookie] : [prior, cookie]
  const sniffer = new SidSniffer((sid) => { route.pool.learn(sid, upstream) })
  return (chunk) => { sniffer.look(chunk) }
}

/** A refused connection takes the upstream out of rotation (passive health). */
export function upstreamFailed (route: Route, upstream: number, error: unknown): void {
  if (isRefusal(error)) route.pool.eject(upstream)
}
