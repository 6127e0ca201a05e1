// Websocket upgrades (SPEC.md "WebSockets and Socket.IO"). Browsers apply no CORS to
// websockets, so this is the only defence against cross-site websocket hijacking: every
// upgrade is judged by `judgeRequest` — the same judgement as every HTTP request — before the
// upstream is contacted, including upgrades that carry a Socket.IO `sid` (engine.io skips its
// own `allowRequest` for those).
//
// An allowed upgrade is tunnelled, not terminated: the request goes to the upstream as it came
// (every header, every offered subprotocol and extension) plus X-Forwarded-*, the upstream's
// 101 goes back as it came, and then the two sockets are joined. Close codes, permessage-deflate
// and backpressure pass through by construction, and a tunnel costs two sockets and a few
// numbers (README "WebSockets and Socket.IO" has the figures against @fastify/http-proxy's terminating mode).
// The tunnel still knows where frames start (frame-scanner.ts), for the message size cap and
// to write close frames of its own (1001 on shutdown and idle timeout, 1009 over the cap).
import { readFileSync } from 'node:fs'
import { request as httpRequest, STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import createError from '@fastify/error'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Logger } from 'pino'
import type { GatewayMetrics } from '../admin/metrics.js'
import { actualHeaders, appendVaryOrigin } from '../policy/headers.js'
import { requestHeadError } from './request-head.js'
import { isAmbiguousPath, judgeRequest, type CorsState } from './cors.js'
import { forwarded, isEncrypted } from './forwarded.js'
import { BadPathError, errorBody, NoRouteError, ShuttingDownError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js'
import { closeFrame, FrameScanner } from './frame-scanner.js'
import { pickUpstream } from './route-table.js'
import { isRefusal } from './upstream-pool.js'
import type { GatewayContext } from './context.js'

export const UpgradeRefusedError = createError('CORSGATE_UPGRADE_REFUSED', '%s', 400)

export type UpgradeOptions = GatewayContext

/** RFC 6455 §7.4.1 close codes corsgate writes itself. */
export const CLOSE_GOING_AWAY = 1001
export const CLOSE_TOO_BIG = 1009

export interface TunnelSettings {
  maxMessageBytes: number
  closeGraceMs: number
  idleTimeoutMs: number
  metrics: GatewayMetrics
  logger: Logger
}

/** The websockets open through this gateway, and what every tunnel shares. */
export class TunnelSet {
  private readonly open = new Set<Tunnel>()
  private emptied: (() => void) | undefined

  constructor (readonly settings: TunnelSettings) {}

  get size (): number {
    return this.open.size
  }

  add (tunnel: Tunnel): void {
    this.open.add(tunnel)
    this.settings.metrics.openWebsockets.inc({ route: tunnel.route })
  }

  delete (tunnel: Tunnel): void {
    this.open.delete(tunnel)
    this.settings.metrics.openWebsockets.dec({ route: tunnel.route })
    this.settings.logger.debug({ route: tunnel.route, upstream: tunnel.upstreamUrl, durationMs: Date.now() - tunnel.openedAt }, 'websocket closed')
    if (this.open.size === 0 && this.emptied !== undefined) this.emptied()
  }

  /** Closes every websocket with `code` (both ways) and resolves once all sockets are gone. */
  async closeAll (code: number): Promise<void> {
    if (this.open.size === 0) return
    const done = new Promise<void>((resolve) => { this.emptied = resolve })
    for (const tunnel of this.open) tunnel.close(code, code)
    await done
  }
}

/** One direction of a tunnel: passes frames from `from` to `to` and can end them with a close frame. */
class Direction {
  readonly scanner: FrameScanner
  private closeCode = 0
  finished = false

  constructor (readonly from: Duplex, readonly to: Duplex, readonly toServer: boolean, maxMessageBytes: number, private readonly onTooBig: () => void) {
    this.scanner = new FrameScanner(maxMessageBytes)
  }

  pass (chunk: Buffer): void {
    const out = this.scanner.scan(chunk)
    if (out.length > 0 && !this.to.write(out)) this.from.pause()
    const stopped = this.scanner.stopped
    if (stopped === 'too_big') this.onTooBig()
    else if (stopped === 'closing') this.finish()
  }

  /** Ends this direction with a close frame as soon as it is between two frames. */
  stop (code: number): void {
    if (this.closeCode !== 0) return
    this.closeCode = code
    if (this.scanner.stopped !== undefined || this.scanner.atBoundary) {
      this.scanner.stopped ??= 'closing'
      this.finish()
    } else {
      this.scanner.stopAtBoundary = true
    }
  }

  private finish (): void {
    if (this.finished || this.closeCode === 0) return
    this.finished = true
    // The peer may have gone already; a write after its end is dropped, not thrown.
    if (this.to.writable) this.to.end(closeFrame(this.closeCode, this.toServer))
    this.from.resume() // drop whatever else comes this way
  }
}

/**
 * A client socket joined to an upstream socket. Built outside the upgrade handler's scope on
 * purpose: a closure created there would keep the handshake's request objects alive for the
 * life of the websocket (kilobytes each, times 10,000 idle websockets).
 */
class Tunnel {
  private readonly up2client: Direction
  private readonly client2up: Direction
  private closing = false
  private graceTimer: NodeJS.Timeout | undefined
  private closedSockets = 0
  readonly openedAt = Date.now()

  constructor (
    private readonly client: Socket,
    private readonly upstream: Socket,
    private readonly set: TunnelSet,
    readonly route: string,
    readonly upstreamUrl: string
  ) {
    const { maxMessageBytes, idleTimeoutMs } = set.settings
    // A message over the cap: the sender hears 1009, the other side 1001 (its peer went away).
    this.client2up = new Direction(client, upstream, true, maxMessageBytes, () => this.close(CLOSE_TOO_BIG, CLOSE_GOING_AWAY))
    this.up2client = new Direction(upstream, client, false, maxMessageBytes, () => this.close(CLOSE_GOING_AWAY, CLOSE_TOO_BIG))
    client.on('data', (chunk: Buffer) => this.client2up.pass(chunk))
    upstream.on('data', (chunk: Buffer) => this.up2client.pass(chunk))
    client.on('drain', () => { if (!this.up2client.finished) upstream.resume() })
    upstream.on('drain', () => { if (!this.client2up.finished) client.resume() })
    // A half-close passes through (the TCP FIN after the closing handshake).
    client.on('end', () => { if (!this.client2up.finished) upstream.end() })
    upstream.on('end', () => { if (!this.up2client.finished) client.end() })
    client.on('close', () => this.socketClosed(upstream))
    upstream.on('close', () => this.socketClosed(client))
    client.on('error', () => this.destroy())
    upstream.on('error', () => this.destroy())
    if (idleTimeoutMs > 0) {
      // Node resets a socket's timeout on reads and writes: one timer covers both directions.
      client.setTimeout(idleTimeoutMs, () => this.close(CLOSE_GOING_AWAY, CLOSE_GOING_AWAY))
    }
    set.add(this)
  }

  /** Closes with a close frame each way (between frames), then the sockets. */
  close (toClient: number, toUpstream: number): void {
    if (this.closing) return
    this.closing = true
    this.up2client.stop(toClient)
    this.client2up.stop(toUpstream)
    this.armGrace()
  }

  /** One side is gone: the other ends once its queued bytes are out, or is destroyed after the grace. */
  private socketClosed (other: Socket): void {
    if (++this.closedSockets === 2) return this.finalize()
    other.end()
    this.armGrace()
  }

  private armGrace (): void {
    if (this.graceTimer !== undefined) return
    this.graceTimer = setTimeout(() => this.destroy(), this.set.settings.closeGraceMs)
    this.graceTimer.unref()
  }

  private destroy (): void {
    this.client.destroy()
    this.upstream.destroy()
  }

  private finalize (): void {
    if (this.graceTimer !== undefined) clearTimeout(this.graceTimer)
    this.set.delete(this)
  }
}

/** Hop-by-hop and forwarding headers we set ourselves; everything else passes as it came. */
const OWN_HEADERS = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'])

/** The upgrade request's headers for the upstream, in the client's order and case (rawHeaders). */
function upstreamHeaders (req: IncomingMessage, upstreamHost: string, trustProxy: boolean): string[] {
  const raw = req.rawHeaders
  const out: string[] = ['Host', upstreamHost]
  for (let i = 0; i < raw.length; i += 2) {
    if (!OWN_HEADERS.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!)
  }
  const f = forwarded(req, trustProxy)
  out.push('X-Forwarded-For', f.for, 'X-Forwarded-Proto', f.proto)
  if (f.host !== undefined) out.push('X-Forwarded-Host', f.host)
  return out
}

/** CORS headers of a response corsgate writes on the handshake: allowed origins see the real error. */
function corsHeaderLines (state: CorsState, vary: string | undefined): string {
  let lines = ''
  const cors = state.decision.reject ? undefined : actualHeaders(state.policy, state.decision)
  if (cors !== undefined) for (const [name, value] of Object.entries(cors)) lines += `${name}: ${value}\r\n`
  if (state.policy.varyOrigin) lines += `vary: ${appendVaryOrigin(vary)}\r\n`
  else if (vary !== undefined) lines += `vary: ${vary}\r\n`
  return lines
}

/** Writes a whole HTTP/1.1 response on a socket that never became a websocket, and closes it. */
function answer (socket: Duplex, status: number, headerLines: string, body: string): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${headerLines}content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  // The client closes after reading; if it does not, do not keep the socket.
  ;(socket as Socket).setTimeout?.(5_000, () => socket.destroy())
}

function destroyOnError (this: Duplex): void {
  this.destroy()
}

function isWebsocketUpgrade (req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade
  return req.method === 'GET' && typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket'
}

async function upgradePlugin (app: FastifyInstance, opts: UpgradeOptions): Promise<void> {
  const { config, metrics, logger, isClosing } = opts
  const { maxMessageBytes, idleTimeoutMs, closeGraceMs } = config.websocket
  const trustProxy = config.server.trustProxy
  const ca = config.server.upstreamCaFile === undefined ? undefined : readFileSync(config.server.upstreamCaFile)
  const logRequests = logger.isLevelEnabled('info')
  const tunnels = new TunnelSet({ maxMessageBytes, closeGraceMs, idleTimeoutMs, metrics, logger })
  app.decorate('websockets', tunnels)

  // SIGTERM: every websocket hears 1001 "going away" before the server closes (SPEC.md "CLI").
  app.addHook('preClose', async () => { await tunnels.closeAll(CLOSE_GOING_AWAY) })

  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // A throw here would be an uncaught exception in the server: never let one out.
    try {
      onUpgrade(req, socket, head)
    } catch (err) {
      logger.error({ err, path: req.url?.split('?')[0] }, 'unexpected error in websocket upgrade')
      answer(socket, 500, '', JSON.stringify(errorBody(500, undefined, undefined)))
    }
  })

  function onUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const started = performance.now()
    socket.on('error', destroyOnError)
    const state = judgeRequest(opts, { method: req.method!, url: req.url!, headers: req.headers, encrypted: isEncrypted(req) }, 'websocket')
    const route = state.route
    const label = route?.label ?? 'none'

    const done = (status: number, upstream?: string): void => {
      const elapsed = performance.now() - started
      metrics.recordRequest(label, 'websocket', state.decision.outcome, state.decision.reason, elapsed / 1000)
      if (logRequests) {
        logger.info({
          route: label,
          method: req.method,
          path: state.path,
          origin: state.origin,
          kind: 'websocket',
          decision: state.decision.outcome,
          reason: state.decision.reason,
          rule: state.decision.rule,
          status,
          upstream,
          durationMs: Math.round(elapsed * 1000) / 1000
        }, 'request')
      }
    }
    const fail = (error: Error & { statusCode: number, code: string }): void => {
      answer(socket, error.statusCode, corsHeaderLines(state, undefined), JSON.stringify(errorBody(error.statusCode, error.code, error.message)))
      done(error.statusCode)
    }

    if (isClosing()) return fail(new ShuttingDownError())
    // The same head checks as every HTTP request (two Host headers, too many header lines).
    const headError = requestHeadError(req.rawHeaders, config) as (Error & { statusCode: number, code: string }) | undefined
    if (headError !== undefined) return fail(headError)
    if (isAmbiguousPath(state.path)) return fail(new BadPathError())
    // Only websocket upgrades are proxied: `h2c` and others would hand the connection to
    // a protocol nothing here judges.
    if (!isWebsocketUpgrade(req)) return fail(new UpgradeRefusedError('only GET websocket upgrades are accepted'))
    if (state.decision.reject) {
      // Denied: 403 on the handshake, the upstream is never contacted. No CORS headers.
      answer(socket, 403, state.policy.varyOrigin ? 'vary: Origin\r\n' : '', JSON.stringify({ error: 'cors_denied', reason: state.decision.reason }))
      return done(403)
    }
    if (route === undefined) return fail(new NoRouteError())
    if (!route.websocket) return fail(new UpgradeRefusedError('websocket upgrades are not enabled on this route'))

    const picked = pickUpstream(route, req, trustProxy)
    const target = new URL(route.upstreams[picked]!)
    const upstreamLabel = route.upstreams[picked]!
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest
    let settled = false
    const proxyReq: ClientRequest = send({
      host: target.hostname.replace(/^\[|\]$/g, ''),
      port: target.port === '' ? undefined : Number(target.port),
      method: 'GET',
      path: req.url,
      headers: upstreamHeaders(req, target.host, trustProxy) as unknown as Record<string, string>,
      agent: false,
      timeout: route.timeoutMs,
      ...(target.protocol === 'https:' ? { rejectUnauthorized: true, ...(ca === undefined ? {} : { ca }) } : {})
    })
    // The client gave up before the upstream answered.
    const abandon = (): void => { if (!settled) proxyReq.destroy() }
    socket.once('close', abandon)

    proxyReq.on('upgrade', (res: IncomingMessage, upstream: Socket, upstreamHead: Buffer) => {
      settled = true
      socket.removeListener('close', abandon)
      if (isClosing() || !socket.writable) {
        upstream.destroy()
        if (socket.writable) return fail(new ShuttingDownError())
        return done(499, upstreamLabel)
      }
      // The handshake timeout is not an idle timeout: the tunnel has its own.
      upstream.setTimeout(0)
      upstream.setNoDelay(true)
      ;(socket as Socket).setNoDelay?.(true)
      socket.write(responseHead(res))
      done(101, upstreamLabel)
      // eslint-disable-next-line no-new -- the tunnel lives in `tunnels` until its sockets close
      new Tunnel(socket as Socket, upstream, tunnels, label, upstreamLabel)
      // Bytes that came with the heads belong to the tunnel too.
      if (upstreamHead.length > 0) upstream.unshift(upstreamHead)
      if (head.length > 0) socket.unshift(head)
    })

    proxyReq.on('response', (res: IncomingMessage) => {
      // The upstream refused the upgrade (engine.io's 400 "Session ID unknown", a 403 of its own
      // origin check, …): relayed as it came, with corsgate's CORS headers instead of its own.
      settled = true
      socket.removeListener('close', abandon)
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => { if ((size += c.length) <= 65_536) chunks.push(c) })
      res.on('end', () => {
        const status = res.statusCode ?? 502
        let lines = ''
        let vary: string | undefined
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = res.rawHeaders[i]!
          const lower = name.toLowerCase()
          if (lower === 'vary') vary = vary === undefined ? res.rawHeaders[i + 1] : `${vary}, ${res.rawHeaders[i + 1]!}`
          else if (!SKIPPED_IN_RELAY.has(lower) && !(lower.startsWith('access-control-') && state.policy.config.stripUpstreamCors)) lines += `${name}: ${res.rawHeaders[i + 1]!}\r\n`
        }
        const body = Buffer.concat(chunks)
        if (socket.writable) {
          socket.end(Buffer.concat([Buffer.from(`HTTP/1.1 ${status} ${res.statusMessage ?? ''}\r\n${lines}${corsHeaderLines(state, vary)}content-length: ${body.length}\r\nconnection: close\r\n\r\n`), body]))
        }
        done(status, upstreamLabel)
      })
      res.on('error', () => socket.destroy())
    })

    proxyReq.on('timeout', () => { if (!settled) proxyReq.destroy(new UpstreamTimeoutError()) })
    proxyReq.on('error', (err: Error & { code?: string }) => {
      if (settled) return
      settled = true
      socket.removeListener('close', abandon)
      const timeout = err.code === 'CORSGATE_UPSTREAM_TIMEOUT'
      metrics.upstreamErrors.inc({ route: label, kind: timeout ? 'timeout' : 'unavailable' })
      // A refused connection takes the upstream out of rotation (passive health).
      if (isRefusal(err)) route.pool.eject(picked)
      logger.warn({ route: label, upstream: upstreamLabel, kind: 'websocket', error: err.message }, 'upstream error')
      fail(timeout ? new UpstreamTimeoutError() : new UpstreamUnavailableError())
    })
    proxyReq.end()
  }
}

const SKIPPED_IN_RELAY = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length'])

/** The upstream's 101 as it came: its status line and every header, in order. */
function responseHead (res: IncomingMessage): string {
  let head = `HTTP/1.1 101 ${res.statusMessage ?? 'Switching Protocols'}\r\n`
  const raw = res.rawHeaders
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]!}: ${raw[i + 1]!}\r\n`
  return head + '\r\n'
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The websockets open through the gateway (closed with 1001 on close). */
    websockets: TunnelSet
  }
}

export const upgrade = fp(upgradePlugin, { name: 'corsgate-upgrade', fastify: '5.x', dependencies: ['corsgate-cors'] })
