// engine.io (Socket.IO's transport) as far as stickiness needs it: the session id of a
// request, the handshake that creates one, reading the id out of the handshake's answer, and
// the cookie that pins a client to an upstream when the session is unknown to this process.
import { STICKY_COOKIE } from './upstream-pool.js'

/** The `sid` query parameter of an engine.io request, or undefined. */
export function engineSid (url: string): string | undefined {
  const q = url.indexOf('?')
  if (q < 0 || !url.includes('sid=', q)) return undefined
  return new URLSearchParams(url.slice(q + 1)).get('sid') ?? undefined
}

/** An engine.io long-poll: `?EIO=…&transport=polling&sid=…` (the upstream answers when it has packets). */
export function isEnginePoll (url: string): boolean {
  const q = url.indexOf('?')
  return q >= 0 && url.includes('EIO=', q) && url.includes('transport=polling', q) && url.includes('sid=', q)
}

/** An engine.io handshake: `?EIO=…&transport=polling` without a `sid` (websocket-only sessions need no stickiness). */
export function isEngineHandshake (url: string): boolean {
  const q = url.indexOf('?')
  return q >= 0 && url.includes('EIO=', q) && url.includes('transport=polling', q) && engineSid(url) === undefined
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue (header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  const text = Array.isArray(header) ? header.join('; ') : header
  for (const part of text.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

// engine.io v3 prefixes the packet with its length (`97:0{"sid":…`), v4 does not (`0{"sid":…`).
const SID_IN_HANDSHAKE = /"sid":"([^"]{1,128})"/
const SNIFF_LIMIT = 1024

/**
 * Reads the `sid` out of the first bytes of a handshake response body as its chunks go past
 * (forward.ts hands each one to `look` before passing it on, untouched). Only a copy of the
 * first kilobyte is kept, until the sid is found.
 */
export class SidSniffer {
  private seen = ''
  private done = false
  constructor (private readonly onSid: (sid: string) => void) {}

  look (chunk: Buffer): void {
    if (this.done) return
    this.seen += chunk.toString('latin1', 0, Math.min(chunk.length, SNIFF_LIMIT))
    const m = SID_IN_HANDSHAKE.exec(this.seen)
    if (m !== null) this.onSid(m[1]!)
    if (m !== null || this.seen.length >= SNIFF_LIMIT) {
      this.done = true
      this.seen = ''
    }
  }
}

/**
 * The `Set-Cookie` value pinning a client to an upstream. `SameSite=None` (the app is usually on
 * another site than the gateway) requires `Secure`, which browsers only keep over https; over
 * plain http the cookie is `Lax` and so only sticks for same-site apps (development).
 */
export function stickyCookie (key: string, path: string, secure: boolean): string {
  return `${STICKY_COOKIE}=${key}; Path=${path}; HttpOnly; ${secure ? 'SameSite=None; Secure' : 'SameSite=Lax'}`
}
