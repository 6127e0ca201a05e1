// Turns the `redis:` config section into ioredis options: URL (redis:// or rediss://),
// password from the URL, a mounted secret file or CORSGATE_REDIS_PASSWORD, database number,
// TLS with a custom CA, Sentinel. The password is never part of anything we log:
// `describeRedisTarget` masks it.
import { readFileSync } from 'node:fs'
import type { RedisOptions } from 'ioredis'
import type { RedisConfig } from '../config/schema.js'

export const PASSWORD_ENV = 'CORSGATE_REDIS_PASSWORD'

export class RedisConfigError extends Error {
  readonly code = 'CORSGATE_REDIS_CONFIG'
  override name = 'RedisConfigError'
}

export interface RedisConnectionSettings {
  /** Options shared by every connection corsgate opens (command client, subscriber, CLI). */
  options: RedisOptions
  /** Database index, for the keyspace channel `__keyspace@{db}__:…`. */
  db: number
  /** Where we connect, password masked: safe to log and to show in `/readyz`. */
  target: string
}

type Env = Record<string, string | undefined>

/**
 * Builds the connection settings. Password precedence: the URL's own password, then
 * `passwordFile` (a mounted secret; surrounding whitespace trimmed), then the env var.
 */
export function redisConnectionSettings (redis: RedisConfig, env: Env = process.env): RedisConnectionSettings {
  const options: RedisOptions = {}
  let db = redis.db ?? 0
  let tls = false
  let target: string

  if (redis.url !== undefined) {
    let url: URL
    try {
      url = new URL(redis.url)
    } catch {
      throw new RedisConfigError(`redis.url: ${INVALID_REDIS_URL}`)
    }
    tls = url.protocol === 'rediss:'
    if (url.hostname !== '') options.host = url.hostname.replace(/^\[(.*)\]$/, '$1')
    options.port = url.port === '' ? 6379 : Number(url.port)
    if (url.username !== '') options.username = decodeURIComponent(url.username)
    if (url.password !== '') options.password = decodeURIComponent(url.password)
    const path = url.pathname.replace(/^\//, '')
    if (path !== '') {
      if (!/^[0-9]+$/.test(path)) throw new RedisConfigError(`redis.url: the path must be a database number, got "/${path}"`)
      db = Number(path)
    }
    target = maskRedisUrl(redis.url)
  } else if (redis.sentinels !== undefined) {
    target = `sentinel ${redis.name ?? ''}@${redis.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}`
  } else {
    throw new RedisConfigError('redis: set url or sentinels')
  }

  if (redis.sentinels !== undefined) {
    // The URL (optional here) still gives password, db and TLS; its host is not used.
    options.sentinels = redis.sentinels.map((s) => ({ host: s.host, port: s.port }))
    options.name = redis.name
    delete options.host
    delete options.port
    target = `sentinel ${redis.name ?? ''}@${redis.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}/${db}`
  }

  if (options.password === undefined) {
    if (redis.passwordFile !== undefined) {
      try {
        options.password = readFileSync(redis.passwordFile, 'utf8').trim()
      } catch (err) {
        throw new RedisConfigError(`redis.passwordFile: cannot read ${redis.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      }
    } else if (env[PASSWORD_ENV] !== undefined && env[PASSWORD_ENV] !== '') {
      options.password = env[PASSWORD_ENV]
    }
  }

  if (tls || redis.tlsCaFile !== undefined) {
    const ca = redis.tlsCaFile === undefined ? undefined : readCa(redis.tlsCaFile)
    options.tls = ca === undefined ? {} : { ca }
    // With Sentinel, the master is reached over TLS too.
    if (redis.sentinels !== undefined) options.enableTLSForSentinelMode = true
  }

  options.db = db
  options.commandTimeout = redis.commandTimeoutMs
  options.connectTimeout = redis.connectTimeoutMs
  return { options, db, target }
}

function readCa (file: string): Buffer {
  try {
    return readFileSync(file)
  } catch (err) {
    throw new RedisConfigError(`redis.tlsCaFile: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

/** What we say about a URL that did not parse: never the text itself. */
export const INVALID_REDIS_URL = 'invalid redis URL (not shown: it may contain a password)'

/**
 * `redis://user:secret@host/0` → `redis://user:***@host/0`. Never throws.
 * Everything between `scheme://` and the LAST `@` is userinfo: a password may itself hold
 * `@`, `/`, `:` or `+` (typed unencoded), so neither the first `@` nor the first `/` can be
 * trusted to end it. The username is kept only when it is plainly one (unreserved
 * characters before the first `:`); anything else is masked whole.
 */
export function maskRedisUrl (url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? ''
  const rest = url.slice(scheme.length)
  const at = rest.lastIndexOf('@')
  if (at < 0) return url
  const userinfo = rest.slice(0, at)
  const colon = userinfo.indexOf(':')
  const username = colon < 0 ? '' : userinfo.slice(0, colon)
  const kept = colon === 0 ? ':' : /^[A-Za-z0-9._~-]+$/.test(username) ? `${username}:` : ''
  return `${scheme}${kept}***@${rest.slice(at + 1)}`
}

/** Exponential reconnect backoff from 50 ms, capped, with a little jitter so replicas spread out. */
export function reconnectBackoff (capMs: number): (times: number) => number {
  return (times) => Math.min(50 * 2 ** Math.min(times - 1, 16), capMs) + Math.floor(Math.random() * 50)
}
