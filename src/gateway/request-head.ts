// The request-head checks corsgate makes beyond Node's parser, shared by plain requests
// (app.ts) and websocket upgrades (upgrade.ts).
import createError from '@fastify/error'
import type { Config } from '../config/schema.js'

export const TooManyHeadersError = createError('CORSGATE_TOO_MANY_HEADERS', 'more than %s request header lines', 431)
export const DuplicateHostError = createError('CORSGATE_DUPLICATE_HOST', 'more than one Host header', 400)

/**
 * A request head corsgate refuses although Node's parser accepted it: more header lines than
 * `server.maxHeadersCount` (431), or more than one `Host` (400, RFC 9112 §3.2: the route is
 * chosen by Host, and Node silently keeps only the first one). Shared with websocket upgrades.
 */
export function requestHeadError (rawHeaders: readonly string[], config: Config): Error | undefined {
  if (rawHeaders.length / 2 > config.server.maxHeadersCount) return new TooManyHeadersError(String(config.server.maxHeadersCount))
  let hosts = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (name.length === 4 && name.toLowerCase() === 'host' && ++hosts > 1) return new DuplicateHostError()
  }
  return undefined
}
