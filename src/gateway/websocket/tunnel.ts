// The websocket tunnel: once the upstream has answered 101, the client's socket and the
// upstream's are joined and bytes pass as they came (close codes, permessage-deflate and
// backpressure pass through by construction; a tunnel costs two sockets and a few numbers).
// The tunnel still knows where frames start (frame-scanner.ts), for the message size cap and
// to write close frames of its own (1001 on shutdown and idle timeout, 1009 over the cap).
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { RequestMetrics } from '../context.js'
import { closeFrame, FrameScanner } from './frame-scanner.js'

/** RFC 6455 §7.4.1 close codes corsgate writes itself. */
export const CLOSE_GOING_AWAY = 1001
export const CLOSE_TOO_BIG = 1009

export interface TunnelSettings {
  maxMessageBytes: number
  closeGraceMs: number
  idleTimeoutMs: number
  metrics: Pick<RequestMetrics, 'openWebsockets'>
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
export class Tunnel {
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
