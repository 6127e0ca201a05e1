// The X-Forwarded-* values corsgate sends upstream, for proxied requests and websocket
// upgrades alike (SPEC.md "Actual requests"). Client-sent values count only with `trustProxy`
// (then For is appended to); otherwise they are replaced, or dropped when there is nothing
// to put in their place — a spoofed X-Forwarded-Host must never reach the upstream.
import type { IncomingMessage } from 'node:http'

export interface Forwarded {
  for: string
  proto: string
  /** Undefined when the request had no Host (HTTP/1.0) and no trusted X-Forwarded-Host. */
  host: string | undefined
}

/** The connection is TLS (corsgate terminating https itself). */
export function isEncrypted (req: IncomingMessage): boolean {
  return (req.socket as { encrypted?: boolean }).encrypted === true
}

function first (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

export function forwarded (req: IncomingMessage, trustProxy: boolean): Forwarded {
  const remote = req.socket.remoteAddress ?? ''
  const h = req.headers
  const prior = first(h['x-forwarded-for'])
  const proto = first(h['x-forwarded-proto'])
  const host = first(h['x-forwarded-host'])
  return {
    for: trustProxy && prior !== undefined ? `${prior}, ${remote}` : remote,
    proto: trustProxy && proto !== undefined ? proto : isEncrypted(req) ? 'https' : 'http',
    host: trustProxy && host !== undefined ? host : h.host
  }
}
