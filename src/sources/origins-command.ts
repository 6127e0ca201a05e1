// `corsgate origins list|add|remove|deny|undeny --policy NAME [PATTERN…] [--ttl 7d] [--redis URL]`
// (SPEC.md "CLI"): edits the live whitelists in Redis. Every pattern is checked with the
// gateway's own grammar before anything is written (one bad pattern → exit 2, nothing
// written); the write, the pruning of expired members and the reload publish go in one
// MULTI; then the resulting lists are printed with each entry's source and expiry.
// Exit codes: 0 ok, 2 bad input, 1 Redis error.
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { loadConfig, type LoadedConfig } from '../config/load.js'
import { configSchema, type RedisConfig } from '../config/schema.js'
import { fileEntries } from '../policy/compile.js'
import { OriginPatternError, parseOriginPattern } from '../policy/origin-pattern.js'
import { RedisConfigError, redisConnectionSettings } from './redis-connection.js'
import { policyKeys, reloadChannel } from './redis-keys.js'

const USAGE = 'usage: corsgate origins list|add|remove|deny|undeny --policy NAME [PATTERN...] [--ttl 7d] [--redis URL] [--config FILE] [--json]'
const EXIT = { ok: 0, redis: 1, usage: 2 } as const
const SUBCOMMANDS = ['list', 'add', 'remove', 'deny', 'undeny'] as const
type Subcommand = typeof SUBCOMMANDS[number]

class InputError extends Error {}

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

export async function runOriginsCommand (args: string[], configPath: (flag: string | undefined) => string): Promise<number> {
  let plan: Plan
  try {
    plan = planCommand(args, configPath)
  } catch (err) {
    if (err instanceof InputError || err instanceof RedisConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      console.error(`corsgate origins: ${(err as Error).message}\n${USAGE}`)
      return EXIT.usage
    }
    throw err // ConfigError: the CLI prints it and exits 2
  }

  const client = new Redis({
    ...plan.connection.options,
    lazyConnect: true,
    // A command-line tool fails fast and says so; it does not retry in the background.
    retryStrategy: () => null,
    sentinelRetryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectionName: 'corsgate-cli'
  })
  // The connection error says more ("ECONNREFUSED") than the rejected command ("Connection is closed").
  let connectionError: Error | undefined
  client.on('error', (err: Error) => { connectionError = err })
  try {
    await client.connect()
    if (plan.sub !== 'list') {
      const summary = await write(client, plan)
      console.log(summary)
    }
    const entries = await listEntries(client, plan)
    if (plan.json) console.log(JSON.stringify({ policy: plan.policy, redis: plan.connection.target, keyPrefix: plan.prefix, entries }, null, 2))
    else printEntries(plan, entries)
    return EXIT.ok
  } catch (err) {
    console.error(`corsgate origins: Redis error (${plan.connection.target}): ${(connectionError ?? err as Error).message}`)
    return EXIT.redis
  } finally {
    client.disconnect()
  }
}

interface Plan {
  sub: Subcommand
  policy: string
  /** Normalised pattern texts, as the gateway would store them. */
  patterns: string[]
  ttlMs: number | undefined
  json: boolean
  prefix: string
  loaded: LoadedConfig
  connection: ReturnType<typeof redisConnectionSettings>
}

function planCommand (args: string[], configPath: (flag: string | undefined) => string): Plan {
  const { values, positionals } = parseArgs({
    args,
    options: {
      policy: { type: 'string', short: 'p' },
      ttl: { type: 'string' },
      redis: { type: 'string' },
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean', default: false }
    },
    allowPositionals: true,
    strict: true
  })
  const [subText, ...rawPatterns] = positionals
  if (subText === undefined || !(SUBCOMMANDS as readonly string[]).includes(subText)) throw new InputError(`expected one of ${SUBCOMMANDS.join(', ')}${subText === undefined ? '' : `, got "${subText}"`}`)
  const sub = subText as Subcommand
  const policy = values.policy
  if (policy === undefined) throw new InputError('--policy NAME is required')
  if (!/^[A-Za-z0-9_.-]+$/.test(policy)) throw new InputError(`invalid policy name "${policy}": policy names use letters, digits, "_", "-", "."`)
  if (sub === 'list' && rawPatterns.length > 0) throw new InputError('list takes no patterns')
  if (sub !== 'list' && rawPatterns.length === 0) throw new InputError(`${sub} needs at least one pattern`)
  if (values.ttl !== undefined && sub !== 'add') throw new InputError('--ttl only applies to add (expiring allow entries)')
  const ttlMs = values.ttl === undefined ? undefined : parseDuration(values.ttl)
  // Checked before the config schema sees it: a bad --redis is bad input (exit 2, one line,
  // never a ZodError stack), and the URL itself is not echoed (it may hold a password).
  if (values.redis !== undefined && !/^rediss?:\/\//.test(values.redis)) throw new InputError('--redis must be a redis:// or rediss:// URL')

  const loaded = loadConfig(configPath(values.config))
  const policyConfig = loaded.config.policies[policy]

  // Check every pattern first; write nothing unless all are good.
  const problems: string[] = []
  const patterns: string[] = []
  for (const raw of rawPatterns) {
    try {
      const pattern = parseOriginPattern(raw)
      if (pattern.kind === 'any' && (sub === 'add') && policyConfig?.credentials !== false) {
        problems.push(`"*": cannot be allowed on policy "${policy}" with credentials: true (browsers refuse a credentialed "*")`)
        continue
      }
      patterns.push(pattern.text)
    } catch (err) {
      if (!(err instanceof OriginPatternError)) throw err
      problems.push(err.message)
    }
  }
  if (problems.length > 0) {
    throw new InputError(`nothing written; invalid pattern${problems.length > 1 ? 's' : ''}:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
  }

  const redisSchema = configSchema.shape.redis.unwrap()
  const checked = redisSchema.safeParse({ ...loaded.config.redis, ...(values.redis === undefined ? {} : { url: values.redis }) })
  if (!checked.success) {
    const issues = checked.error.issues.map((i) => `redis${i.path.map((p) => `.${String(p)}`).join('')}: ${i.message}`)
    throw new InputError(`invalid Redis settings: ${issues.join('; ')}`)
  }
  const redisConfig: RedisConfig = checked.data
  if (redisConfig.url === undefined && redisConfig.sentinels === undefined) throw new InputError(`no Redis to write to: pass --redis URL, set CORSGATE_REDIS_URL, or set redis.url in ${loaded.file}`)
  if (policyConfig === undefined) console.error(`warning: policy "${policy}" is not defined in ${loaded.file}; gateways using that file ignore its Redis keys`)
  return {
    sub,
    policy,
    patterns: [...new Set(patterns)],
    ttlMs,
    json: values.json,
    prefix: redisConfig.keyPrefix,
    loaded,
    connection: redisConnectionSettings(redisConfig)
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** `7d`, `12h`, `1h30m`, `1500ms` → milliseconds. */
export function parseDuration (text: string): number {
  if (!/^(\d+(ms|s|m|h|d|w))+$/.test(text)) throw new InputError(`invalid --ttl "${text}": use a number with a unit (ms, s, m, h, d, w), e.g. 7d, 12h, 1h30m`)
  let total = 0
  for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) total += Number(n) * (UNIT_MS[unit!] ?? 0)
  if (total <= 0) throw new InputError(`invalid --ttl "${text}": must be more than zero`)
  return total
}

async function write (client: Redis, plan: Plan): Promise<string> {
  const keys = policyKeys(plan.prefix, plan.policy)
  const now = Date.now()
  const multi = client.multi()
  switch (plan.sub) {
    case 'add':
      if (plan.ttlMs === undefined) multi.sadd(keys.origins, ...plan.patterns)
      else multi.zadd(keys.expiring, ...plan.patterns.flatMap((p) => [now + plan.ttlMs!, p]))
      break
    case 'remove':
      multi.srem(keys.origins, ...plan.patterns)
      multi.zrem(keys.expiring, ...plan.patterns)
      break
    case 'deny':
      multi.sadd(keys.deny, ...plan.patterns)
      break
    case 'undeny':
      multi.srem(keys.deny, ...plan.patterns)
      break
  }
  // The CLI prunes expired members; the gateway only ignores them.
  multi.zremrangebyscore(keys.expiring, '-inf', now)
  multi.publish(reloadChannel(plan.prefix), plan.policy)
  const replies = await multi.exec()
  if (replies === null) throw new Error('MULTI was aborted')
  for (const [err] of replies) if (err !== null) throw err
  const counts = replies.map(([, v]) => Number(v))
  const changed = plan.sub === 'remove' ? counts[0]! + counts[1]! : counts[0]!
  const pruned = counts[counts.length - 2]!
  const receivers = counts[counts.length - 1]!
  const verb = { add: plan.ttlMs === undefined ? 'added' : 'added (expiring)', remove: 'removed', deny: 'denied', undeny: 'undenied' }[plan.sub as Exclude<Subcommand, 'list'>]
  const expiry = plan.ttlMs === undefined ? '' : ` until ${new Date(now + plan.ttlMs).toISOString()}`
  return `${verb} ${plan.patterns.join(', ')}${expiry} on policy ${plan.policy}: ${changed} change${changed === 1 ? '' : 's'}, ${pruned} expired pruned, reload published to ${receivers} subscriber${receivers === 1 ? '' : 's'}`
}

async function listEntries (client: Redis, plan: Plan): Promise<ListedEntry[]> {
  const keys = policyKeys(plan.prefix, plan.policy)
  const [origins, deny, expiring] = await Promise.all([
    client.smembers(keys.origins),
    client.smembers(keys.deny),
    client.zrange(keys.expiring, '0', '-1', 'WITHSCORES')
  ])
  const now = Date.now()
  const out: ListedEntry[] = []
  const policyConfig = plan.loaded.config.policies[plan.policy]
  if (policyConfig !== undefined) {
    const file = fileEntries(plan.policy, policyConfig, plan.policy === 'default' ? plan.loaded.envOrigins : [])
    for (const e of file.allow) out.push({ list: 'allow', pattern: e.value, source: e.source === 'env' ? 'env' : 'file' })
    for (const e of file.deny) out.push({ list: 'deny', pattern: e.value, source: 'file' })
  }
  const withCheck = (e: ListedEntry): ListedEntry => {
    try {
      parseOriginPattern(e.pattern)
    } catch (err) {
      if (err instanceof OriginPatternError) e.invalid = err.message
      else throw err
    }
    return e
  }
  for (const pattern of origins.sort()) out.push(withCheck({ list: 'allow', pattern, source: 'redis' }))
  for (const [pattern, score] of pairs(expiring)) out.push(withCheck({ list: 'allow', pattern, source: 'redis-expiring', expiresAt: score, expired: score <= now }))
  for (const pattern of deny.sort()) out.push(withCheck({ list: 'deny', pattern, source: 'redis' }))
  return out
}

function pairs (reply: unknown[]): Array<[string, number]> {
  if (reply.length > 0 && Array.isArray(reply[0])) return (reply as unknown[][]).map((p) => [String(p[0]), Number(p[1])])
  const out: Array<[string, number]> = []
  for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), Number(reply[i + 1])])
  return out
}

function printEntries (plan: Plan, entries: ListedEntry[]): void {
  console.log(`policy ${plan.policy} · ${plan.connection.target} · prefix "${plan.prefix}"`)
  if (entries.length === 0) {
    console.log('  (no entries)')
    return
  }
  const width = Math.max(...entries.map((e) => e.pattern.length))
  const now = Date.now()
  for (const e of entries) {
    let note = ''
    if (e.expiresAt !== undefined) note = e.expired === true ? `  expired ${new Date(e.expiresAt).toISOString()} (pruned on the next write)` : `  expires ${new Date(e.expiresAt).toISOString()} (in ${formatDuration(e.expiresAt - now)})`
    if (e.invalid !== undefined) note += `  INVALID, skipped by the gateway: ${e.invalid}`
    console.log(`  ${e.list.padEnd(5)}  ${e.pattern.padEnd(width)}  ${e.source}${note}`)
  }
}

function formatDuration (ms: number): string {
  const s = Math.round(ms / 1000)
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  if (d > 0) return `${d}d ${h}h`
  if (h > 0) return `${h}h ${m}m`
  if (m > 0) return `${m}m ${s % 60}s`
  return `${s}s`
}
