// The upstreams of one route: round robin over those in rotation, passive health, and
// Socket.IO session stickiness (docs "WebSockets and Socket.IO").
//
// Stickiness is by engine.io session id: the pool learns `sid → upstream` from the body of the
// handshake response (`0{"sid":"…",…}`, read as it streams past, see `SidSniffer`) and routes every
// later request carrying `?sid=` — polls, posts and the websocket upgrade — to that upstream.
// When a sid is unknown to this process (a restart, another replica), the `corsgate_upstream`
// cookie set on the handshake response names the upstream instead, for clients that carry cookies.
import { createHash } from 'node:crypto'

export interface UpstreamPoolOptions {
  /** How long an upstream that refused a connection stays out of rotation. */
  ejectionMs: number
  /** A session not seen for this long is forgotten (engine.io itself drops it after ~45 s of silence). */
  sessionIdleMs?: number
  /** Upper bound on remembered sessions; the least recently seen go first. */
  maxSessions?: number
  /** `client-address`: a request without a known session goes where its client's address hashes to. */
  sticky?: 'session' | 'client-address'
  /** The clock (Unix ms) used when a method is given no `now`; tests inject a fake one. */
  now?: () => number
}

interface Session { upstream: number, seen: number }

/** The name of the cookie that pins a client to an upstream; its value is `UpstreamPool.keys[i]`. */
export const STICKY_COOKIE = 'corsgate_upstream'

export class UpstreamPool {
  readonly upstreams: readonly string[]
  /** Stable short names of the upstreams for the sticky cookie (a hash, so reordering the list is harmless). */
  readonly keys: readonly string[]
  private readonly ejectedUntil: number[]
  private readonly sessions = new Map<string, Session>()
  private readonly ejectionMs: number
  private readonly sessionIdleMs: number
  private readonly maxSessions: number
  private readonly byAddress: boolean
  private readonly clock: () => number
  private cursor = 0

  constructor (upstreams: readonly string[], opts: UpstreamPoolOptions) {
    this.upstreams = upstreams
    this.keys = upstreams.map((u) => createHash('sha256').update(u).digest('base64url').slice(0, 10))
    this.ejectedUntil = upstreams.map(() => 0)
    this.ejectionMs = opts.ejectionMs
    this.sessionIdleMs = opts.sessionIdleMs ?? 120_000
    this.maxSessions = opts.maxSessions ?? 200_000
    this.byAddress = opts.sticky === 'client-address'
    this.clock = opts.now ?? Date.now
  }

  /** True when there is a choice to make (and so stickiness to keep). */
  get balanced (): boolean {
    return this.upstreams.length > 1
  }

  /**
   * The upstream for a request: the session's when `sid` is known, else the cookie's, else the
   * next one in rotation. Ejected upstreams are skipped; when every one is ejected, the rotation
   * goes on over all of them (trying beats refusing everything).
   */
  pick (sid: string | undefined, cookie: string | undefined, now = this.clock(), clientAddress?: string): number {
    if (!this.balanced) return 0
    if (sid !== undefined) {
      const session = this.sessions.get(sid)
      if (session !== undefined) {
        // Re-inserted so that the map stays ordered by last use (see `sweep`).
        this.sessions.delete(sid)
        session.seen = now
        this.sessions.set(sid, session)
        return session.upstream
      }
    }
    if (cookie !== undefined) {
      const i = this.keys.indexOf(cookie)
      if (i >= 0 && (sid !== undefined || this.ejectedUntil[i]! <= now)) return i
    }
    const n = this.upstreams.length
    if (this.byAddress && clientAddress !== undefined) {
      // The same address always starts at the same upstream; an ejected one passes to the next.
      const start = fnv1a(clientAddress) % n
      for (let k = 0; k < n; k++) {
        const i = (start + k) % n
        if (this.ejectedUntil[i]! <= now) return i
      }
      return start
    }
    for (let k = 0; k < n; k++) {
      const i = (this.cursor + k) % n
      if (this.ejectedUntil[i]! <= now) {
        this.cursor = (i + 1) % n
        return i
      }
    }
    const i = this.cursor
    this.cursor = (i + 1) % n
    return i
  }

  /** Records which upstream created session `sid`. */
  learn (sid: string, upstream: number, now = this.clock()): void {
    this.sessions.delete(sid)
    this.sessions.set(sid, { upstream, seen: now })
    this.sweep(now)
  }

  /** Takes an upstream out of rotation after a refused connection. */
  eject (upstream: number, now = this.clock()): void {
    this.ejectedUntil[upstream] = now + this.ejectionMs
  }

  /** Whether the upstream is in rotation now. */
  inRotation (upstream: number, now = this.clock()): boolean {
    return this.ejectedUntil[upstream]! <= now
  }

  get sessionCount (): number {
    return this.sessions.size
  }

  /** Forgets sessions idle too long, oldest first; the map is in last-use order, so this stops early. */
  private sweep (now: number): void {
    const cutoff = now - this.sessionIdleMs
    for (const [sid, session] of this.sessions) {
      if (session.seen > cutoff && this.sessions.size <= this.maxSessions) break
      this.sessions.delete(sid)
    }
  }
}

/** 32-bit FNV-1a: a stable, well-spread hash of a short string. */
function fnv1a (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/**
 * The address a `client-address` route hashes: the first X-Forwarded-For entry behind a trusted
 * proxy (spoofable, but it only moves the client between upstreams), else the peer address.
 */
export function clientAddress (remote: string | undefined, forwardedFor: string | string[] | undefined, trustProxy: boolean): string {
  if (trustProxy && forwardedFor !== undefined) {
    const first = (Array.isArray(forwardedFor) ? forwardedFor[0]! : forwardedFor).split(',')[0]!.trim()
    if (first !== '') return first
  }
  return remote ?? ''
}

const REFUSALS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT'])

/** True for errors that mean "nothing answers there": the upstream leaves the rotation. */
export function isRefusal (error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code
  return typeof code === 'string' && REFUSALS.has(code)
}
