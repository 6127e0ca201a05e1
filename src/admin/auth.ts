// `admin.auth` (SPEC.md "The admin page"): a bearer token for every admin path but the probes.
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { AdminAuthConfig } from '../config/schema.js'

/** The kubelet probes these without credentials. */
const PROBES = new Set(['/healthz', '/readyz'])

/**
 * The token, read once at start: from the file (a mounted Secret; surrounding white space
 * dropped, as `kubectl create secret --from-file` keeps a trailing newline) or the variable.
 * An Error naming the field when there is none, so the gateway never starts unprotected.
 */
export function readAdminToken (auth: AdminAuthConfig, env: Record<string, string | undefined>): string | Error {
  if (auth.tokenFile !== undefined) {
    let text: string
    try {
      text = readFileSync(auth.tokenFile, 'utf8')
    } catch (err) {
      return new Error(`admin.auth.tokenFile: cannot read ${auth.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    }
    const token = text.trim()
    return token === '' ? new Error(`admin.auth.tokenFile: ${auth.tokenFile} is empty`) : token
  }
  const token = env[auth.tokenEnv!]?.trim() ?? ''
  return token === '' ? new Error(`admin.auth.tokenEnv: the environment variable ${auth.tokenEnv!} is not set or empty`) : token
}

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

export class AdminAuth {
  private readonly expected: Buffer

  constructor (token: string, private readonly openMetrics: boolean) {
    this.expected = digest(token)
  }

  /** Whether `path` (no query) needs the token at all. */
  guards (path: string): boolean {
    if (PROBES.has(path)) return false
    return !(this.openMetrics && path === '/metrics')
  }

  /**
   * Whether an `Authorization` header carries the token: `Bearer TOKEN`, or `Basic` with the
   * token as the password (any user name), which is what a browser sends after its own
   * password prompt, so people can open the page without a header-setting extension.
   * Digests of equal length are compared in constant time, whatever the length sent.
   */
  accepts (authorization: string | undefined): boolean {
    if (authorization === undefined) return false
    const space = authorization.indexOf(' ')
    if (space < 0) return false
    const scheme = authorization.slice(0, space).toLowerCase()
    const value = authorization.slice(space + 1).trim()
    let presented: string
    if (scheme === 'bearer') {
      presented = value
    } else if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon < 0) return false
      presented = decoded.slice(colon + 1)
    } else {
      return false
    }
    return timingSafeEqual(digest(presented), this.expected)
  }
}
