// The live whitelists of a policy in Redis, as `corsgate origins` reads and edits them
// (SPEC.md "Redis: live whitelists"). An edit, the pruning of expired members and the reload
// publish go in one MULTI. Arguments, checks and output are the CLI's (src/cli/origins.ts).
import { CommandLineConnection } from './command-line-client.js'
import type { LoadedConfig } from '../config/load.js'
import { fileEntries } from '../policy/compile.js'
import { OriginPatternError, parseOriginPattern } from '../policy/origin-pattern.js'
import type { RedisConnectionSettings } from './redis-connection.js'
import { escapeGlob, policyKeys, policyOfKey, reloadChannel } from './redis-keys.js'

export type OriginEditKind = 'add' | 'remove' | 'deny' | 'undeny'

export interface OriginEdit {
  kind: OriginEditKind
  policy: string
  /** Normalised pattern texts, as the gateway would store them. */
  patterns: string[]
  /** `add` only: the entries go to the expiring set, expiring this long from now. */
  ttlMs: number | undefined
}

export interface OriginEditResult {
  /** Members added or removed. */
  changed: number
  /** Expired members pruned from the expiring set. */
  pruned: number
  /** Subscribers the reload publish reached. */
  receivers: number
  /** Unix ms when the added entries expire, for an `add` with `ttlMs`. */
  expiresAt: number | undefined
}

export interface ListedEntry {
  list: 'allow' | 'deny'
  pattern: string
  source: 'file' | 'env' | 'redis' | 'redis-expiring'
  /** Unix ms, expiring entries only. */
  expiresAt?: number
  expired?: boolean
  /** Why the gateway skips this entry, when it does. */
  invalid?: string
}

/** The Redis lists of one policy, as `corsgate origins export` writes them and `import` reads them. */
export interface PolicyLists {
  origins: string[]
  deny: string[]
  /** Allow patterns with their expiry (Unix ms). */
  expiring: Array<{ origin: string, expiresAt: number }>
}

export class RedisOriginLists extends CommandLineConnection {
  constructor (connection: RedisConnectionSettings, private readonly prefix: string) {
    super(connection)
  }

  async edit ({ kind, policy, patterns, ttlMs }: OriginEdit): Promise<OriginEditResult> {
    return await this.explained(async () => {
      const keys = policyKeys(this.prefix, policy)
      const now = Date.now()
      const multi = this.client.multi()
      switch (kind) {
        case 'add':
          if (ttlMs === undefined) multi.sadd(keys.origins, ...patterns)
          else multi.zadd(keys.expiring, ...patterns.flatMap((p) => [now + ttlMs, p]))
          break
        case 'remove':
          multi.srem(keys.origins, ...patterns)
          multi.zrem(keys.expiring, ...patterns)
          break
        case 'deny':
          multi.sadd(keys.deny, ...patterns)
          break
        case 'undeny':
          multi.srem(keys.deny, ...patterns)
          break
      }
      // The CLI prunes expired members; the gateway only ignores them.
      multi.zremrangebyscore(keys.expiring, '-inf', now)
      multi.publish(reloadChannel(this.prefix), policy)
      const replies = await multi.exec()
      if (replies === null) throw new Error('MULTI was aborted')
      for (const [err] of replies) if (err !== null) throw err
      const counts = replies.map(([, v]) => Number(v))
      return {
        changed: kind === 'remove' ? counts[0]! + counts[1]! : counts[0]!,
        pruned: counts[counts.length - 2]!,
        receivers: counts[counts.length - 1]!,
        expiresAt: ttlMs === undefined ? undefined : now + ttlMs
      }
    })
  }

  /** Every entry of `policy`: the config file's (and env's), then Redis's, each checked as the gateway would. */
  async list (policy: string, loaded: LoadedConfig): Promise<ListedEntry[]> {
    return await this.explained(async () => {
      const keys = policyKeys(this.prefix, policy)
      const [origins, deny, expiring] = await Promise.all([
        this.client.smembers(keys.origins),
        this.client.smembers(keys.deny),
        this.client.zrange(keys.expiring, '0', '-1', 'WITHSCORES')
      ])
      const now = Date.now()
      const out: ListedEntry[] = []
      const policyConfig = loaded.config.policies[policy]
      if (policyConfig !== undefined) {
        const file = fileEntries(policy, policyConfig, policy === 'default' ? loaded.envOrigins : [])
        for (const e of file.allow) out.push({ list: 'allow', pattern: e.value, source: e.source === 'env' ? 'env' : 'file' })
        for (const e of file.deny) out.push({ list: 'deny', pattern: e.value, source: 'file' })
      }
      for (const pattern of origins.sort()) out.push(withCheck({ list: 'allow', pattern, source: 'redis' }))
      for (const [pattern, score] of pairs(expiring)) out.push(withCheck({ list: 'allow', pattern, source: 'redis-expiring', expiresAt: score, expired: score <= now }))
      for (const pattern of deny.sort()) out.push(withCheck({ list: 'deny', pattern, source: 'redis' }))
      return out
    })
  }

  /** Names of every policy that has at least one key under the prefix. */
  async policiesInRedis (): Promise<string[]> {
    return await this.explained(async () => {
      const names = new Set<string>()
      let cursor = '0'
      do {
        const [next, keys] = await this.client.scan(cursor, 'MATCH', `${escapeGlob(this.prefix)}policy:*`, 'COUNT', 1000)
        for (const key of keys) {
          const name = policyOfKey(this.prefix, key)
          if (name !== undefined) names.add(name)
        }
        cursor = next
      } while (cursor !== '0')
      return [...names].sort()
    })
  }

  /** A policy's Redis lists, sorted; expiring entries already past their expiry are left out. */
  async read (policy: string, now = Date.now()): Promise<PolicyLists> {
    return await this.explained(async () => {
      const keys = policyKeys(this.prefix, policy)
      const multi = this.client.multi()
      multi.smembers(keys.origins)
      multi.smembers(keys.deny)
      multi.zrangebyscore(keys.expiring, `(${now}`, '+inf', 'WITHSCORES')
      const replies = await multi.exec()
      if (replies === null) throw new Error('MULTI was aborted')
      for (const [err] of replies) if (err !== null) throw err
      const [origins, deny, expiring] = replies.map(([, v]) => v as unknown[])
      return {
        origins: (origins as string[]).sort(),
        deny: (deny as string[]).sort(),
        expiring: pairs(expiring ?? []).map(([origin, expiresAt]) => ({ origin, expiresAt })).sort((a, b) => a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0)
      }
    })
  }

  /**
   * Writes lists for several policies in one MULTI, then publishes a reload for each.
   * `replace`: each named policy's three keys hold exactly what is given afterwards;
   * otherwise the entries are added (an expiring entry's expiry is set to the given one).
   */
  async write (lists: ReadonlyMap<string, PolicyLists>, replace: boolean): Promise<{ receivers: number }> {
    return await this.explained(async () => {
      const multi = this.client.multi()
      const now = Date.now()
      for (const [policy, l] of lists) {
        const keys = policyKeys(this.prefix, policy)
        if (replace) multi.del(keys.origins, keys.deny, keys.expiring)
        if (l.origins.length > 0) multi.sadd(keys.origins, ...l.origins)
        if (l.deny.length > 0) multi.sadd(keys.deny, ...l.deny)
        if (l.expiring.length > 0) multi.zadd(keys.expiring, ...l.expiring.flatMap((e) => [e.expiresAt, e.origin]))
        multi.zremrangebyscore(keys.expiring, '-inf', now)
      }
      for (const policy of lists.keys()) multi.publish(reloadChannel(this.prefix), policy)
      const replies = await multi.exec()
      if (replies === null) throw new Error('MULTI was aborted')
      for (const [err] of replies) if (err !== null) throw err
      const receivers = Number(replies[replies.length - 1]?.[1] ?? 0)
      return { receivers }
    })
  }
}

function withCheck (e: ListedEntry): ListedEntry {
  try {
    parseOriginPattern(e.pattern)
  } catch (err) {
    if (err instanceof OriginPatternError) e.invalid = err.message
    else throw err
  }
  return e
}

function pairs (reply: unknown[]): Array<[string, number]> {
  if (reply.length > 0 && Array.isArray(reply[0])) return (reply as unknown[][]).map((p) => [String(p[0]), Number(p[1])])
  const out: Array<[string, number]> = []
  for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), Number(reply[i + 1])])
  return out
}
