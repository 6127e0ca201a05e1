// The upstream side of an allowed websocket upgrade (SPEC "WebSockets and Socket.IO"). Admission
// has judged it already — the same judgement as every HTTP request, so a denied origin never
// reaches the upstream. Here the upgrade goes to the upstream as it came (every header, every
// offered subprotocol and extension, by the rules of upstream-request.ts), and the upstream's
// 101 goes back as it came before the sockets are joined (tunnel.ts). A refusal (engine.io's
// 400 "Session ID unknown", a 403 of the backend's own) is relayed with corsgate's CORS headers.
//
// Upgrades use node:http rather than the undici agent of forward.ts: undici's `upgrade` fails
// on any answer but 101, and an upstream's refusal must reach the client as it was given; the
// TLS settings (CA, verification) are the same `UpstreamRules`.
import type { ClientRequest, IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { addCorsHeaders, errorAnswer, writeAnswerToSocket } from '../answers.js'
import { pickUpstream, upstreamFailed } from '../balance/balancer.js'
import type { GatewayContext } from '../context.js'
import { ShuttingDownError, UpstreamTimeoutError, UpstreamUnavailableError } from '../errors.js'
import type { Judgement } from '../judge.js'
import type { UpstreamRules } from '../upstream-request.js'
import { Tunnel, type TunnelSet } from './tunnel.js'
import { request as httpRequest } from '../../node-http.js'

/** Called once with the status the client got (101, the upstream's refusal, corsgate's error, 499) and the upstream. */
export type HandshakeDone = (status: number, upstream?: string) => void

// Response headers of a relayed refusal that describe the upstream connection, not ours.
const SKIPPED_IN_RELAY = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length'])
const RELAYED_BODY_MAX = 65_536

export class Handshakes {
  constructor (
    private readonly ctx: Pick<GatewayContext, 'metrics' | 'logger' | 'isClosing'>,
    private readonly rules: UpstreamRules,
    private readonly tunnels: TunnelSet
  ) {}

  /** Opens the upgrade on the route's upstream and joins the sockets, or answers in its place. */
  open (req: IncomingMessage, socket: Duplex, head: Buffer, state: Judgement, done: HandshakeDone): void {
    const route = state.route!
    const picked = pickUpstream(route, req, this.rules.trustProxy)
    const upstreamUrl = route.upstreams[picked]!
    const target = this.rules.target(upstreamUrl)
    const send = target.secure ? httpsRequest : httpRequest
    let settled = false
    const proxyReq: ClientRequest = send({
      host: target.hostname,
      port: target.port,
      method: 'GET',
      path: req.url,
      headers: this.rules.requestHeaders(req, target, route.hostHeader, true),
      agent: false,
      timeout: route.timeoutMs,
      // Node would take the server name from the `Host` header; '' sends none, for an IP address.
      ...(target.secure ? { ...this.rules.tls, servername: isIP(target.servername) === 0 ? target.servername : '' } : {})
    })
    const settle = (): void => {
      settled = true
      socket.removeListener('close', abandon)
    }
    // The client gave up before the upstream answered.
    const abandon = (): void => { if (!settled) proxyReq.destroy() }
    socket.once('close', abandon)

    proxyReq.on('upgrade', (res: IncomingMessage, upstream: Socket, upstreamHead: Buffer) => {
      settle()
      if (this.ctx.isClosing() || !socket.writable) {
        upstream.destroy()
        if (!socket.writable) return done(499, upstreamUrl)
        writeAnswerToSocket(socket, errorAnswer(new ShuttingDownError(), state))
        return done(503, upstreamUrl)
      }
      // The handshake timeout is not an idle timeout: the tunnel has its own.
      upstream.setTimeout(0)
      upstream.setNoDelay(true)
      ;(socket as Socket).setNoDelay?.(true)
      socket.write(switchingProtocolsHead(res))
      done(101, upstreamUrl)
      // eslint-disable-next-line no-new -- the tunnel lives in `tunnels` until its sockets close
      new Tunnel(socket as Socket, upstream, this.tunnels, route.label, upstreamUrl)
      // Bytes that came with the heads belong to the tunnel too.
      if (upstreamHead.length > 0) upstream.unshift(upstreamHead)
      if (head.length > 0) socket.unshift(head)
    })

    proxyReq.on('response', (res: IncomingMessage) => {
      settle()
      relayRefusal(res, socket, state, (status) => { done(status, upstreamUrl) })
    })

    proxyReq.on('timeout', () => { if (!settled) proxyReq.destroy(new UpstreamTimeoutError()) })
    proxyReq.on('error', (err: Error & { code?: string }) => {
      if (settled) return
      settle()
      const timeout = err.code === 'CORSGATE_UPSTREAM_TIMEOUT'
      this.ctx.metrics.upstreamErrors.inc({ route: route.label, kind: timeout ? 'timeout' : 'unavailable' })
      upstreamFailed(route, picked, err)
      this.ctx.logger.warn({ route: route.label, upstream: upstreamUrl, kind: 'websocket', error: err.message }, 'upstream error')
      const plan = errorAnswer(timeout ? new UpstreamTimeoutError() : new UpstreamUnavailableError(), state)
      writeAnswerToSocket(socket, plan)
      done(plan.status, upstreamUrl)
    })
    proxyReq.end()
  }
}

/** The upstream's refusal of an upgrade, relayed as it came, with corsgate's CORS headers instead of its own. */
function relayRefusal (res: IncomingMessage, socket: Duplex, state: Judgement, done: (status: number) => void): void {
  const chunks: Buffer[] = []
  let size = 0
  res.on('data', (c: Buffer) => { if ((size += c.length) <= RELAYED_BODY_MAX) chunks.push(c) })
  res.on('end', () => {
    const status = res.statusCode ?? 502
    const strip = state.policy.config.stripUpstreamCors
    const headers: Record<string, string> = {}
    const raw = res.rawHeaders
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase()
      if (SKIPPED_IN_RELAY.has(name) || (strip && name.startsWith('access-control-'))) continue
      headers[name] = headers[name] === undefined ? raw[i + 1]! : `${headers[name]}, ${raw[i + 1]!}`
    }
    addCorsHeaders(headers, state)
    const body = Buffer.concat(chunks)
    if (socket.writable) {
      let head = `HTTP/1.1 ${status} ${res.statusMessage ?? ''}\r\n`
      for (const name in headers) head += `${name}: ${headers[name]!}\r\n`
      socket.end(Buffer.concat([Buffer.from(`${head}content-length: ${body.length}\r\nconnection: close\r\n\r\n`), body]))
    }
    done(status)
  })
  res.on('error', () => socket.destroy())
}

/** The upstream's 101 as it came: its status line and every header, in order. */
function switchingProtocolsHead (res: IncomingMessage): string {
  let head = `HTTP/1.1 101 ${res.statusMessage ?? 'Switching Protocols'}\r\n`
  const raw = res.rawHeaders
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]!}: ${raw[i + 1]!}\r\n`
  return head + '\r\n'
}
