// `corsgate origins list|add|remove|deny|undeny --policy NAME [PATTERN…] [--ttl 7d] [--redis URL]`
// (SPEC.md "CLI"): edits the live whitelists in Redis. Every pattern is checked with the
// gateway's own grammar before anything is written (one bad pattern → exit 2, nothing
// written); then the edit goes to Redis (src/sources/origin-lists.ts) and the resulting
// lists are printed with each entry's source and expiry.
// Exit codes: 0 ok, 2 bad input, 1 Redis error.
import { loadConfig, type LoadedConfig } from '../config/load.js'
import { OriginPatternError, parseOriginPattern } from '../policy/origin-pattern.js'
import { RedisOriginLists, type ListedEntry, type OriginEditKind, type OriginEditResult } from '../sources/origin-lists.js'
import { RedisConfigError, redisConnectionSettings, type RedisConnectionSettings } from '../sources/redis-connection.js'
import { USAGE, unknownPolicyMessage } from './origins-usage.js'
import { checkRedisFlag, CommandInputError, commandRedisConfig, parseCommandArgs } from './redis-settings.js'

const EXIT = { ok: 0, redis: 1, usage: 2 } as const
const SUBCOMMANDS = ['list', 'add', 'remove', 'deny', 'undeny'] as const
type Subcommand = typeof SUBCOMMANDS[number]

export async function runOriginsCommand (args: string[], configPath: (flag: string | undefined) => string): Promise<number> {
  if (args[0] === 'observed') {
    const { runObservedCommand } = await import('./observed.js')
    return await runObservedCommand(args.slice(1), configPath)
  }
  const first = args.find((a) => !a.startsWith('-'))
  if (first === 'export' || first === 'import') {
    const { runTransferCommand } = await import('./origins-transfer.js')
    return await runTransferCommand(args, configPath)
  }
  let plan: Plan
  try {
    plan = planCommand(args, configPath)
  } catch (err) {
    if (err instanceof CommandInputError || err instanceof RedisConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      console.error(`corsgate origins: ${(err as Error).message}\n${USAGE}`)
      return EXIT.usage
    }
    throw err // ConfigError: the CLI prints it and exits 2
  }

  if (plan.dryRun) {
    // Shows what the edit would refuse of observed traffic (src/cli/diff.ts); writes nothing.
    const { runDryRun } = await import('./diff.js')
    return await runDryRun(plan.loaded, plan.connection, plan.prefix, { kind: plan.sub as 'remove' | 'deny', policy: plan.policy, patterns: plan.patterns })
  }
  const lists = new RedisOriginLists(plan.connection, plan.prefix)
  try {
    await lists.connect()
    if (plan.sub !== 'list') {
      const result = await lists.edit({ kind: plan.sub, policy: plan.policy, patterns: plan.patterns, ttlMs: plan.ttlMs })
      console.log(editSummary(plan, plan.sub, result))
    }
    const entries = await lists.list(plan.policy, plan.loaded)
    if (plan.json) console.log(JSON.stringify({ policy: plan.policy, redis: plan.connection.target, keyPrefix: plan.prefix, entries }, null, 2))
    else printEntries(plan, entries)
    return EXIT.ok
  } catch (err) {
    console.error(`corsgate origins: Redis error (${plan.connection.target}): ${(err as Error).message}`)
    return EXIT.redis
  } finally {
    lists.close()
  }
}

interface Plan {
  sub: Subcommand
  policy: string
  /** Normalised pattern texts, as the gateway would store them. */
  patterns: string[]
  ttlMs: number | undefined
  json: boolean
  dryRun: boolean
  prefix: string
  loaded: LoadedConfig
  connection: RedisConnectionSettings
}

function planCommand (args: string[], configPath: (flag: string | undefined) => string): Plan {
  const { values, positionals } = parseCommandArgs(args, {
    policy: { type: 'string', short: 'p' },
    ttl: { type: 'string' },
    json: { type: 'boolean', default: false },
    'dry-run': { type: 'boolean', default: false },
    'allow-unknown-policy': { type: 'boolean', default: false }
  })
  const [subText, ...rawPatterns] = positionals
  if (subText === undefined || !(SUBCOMMANDS as readonly string[]).includes(subText)) throw new CommandInputError(`expected one of ${SUBCOMMANDS.join(', ')}${subText === undefined ? '' : `, got "${subText}"`}`)
  const sub = subText as Subcommand
  const policy = values.policy
  if (policy === undefined) throw new CommandInputError('--policy NAME is required')
  if (!/^[A-Za-z0-9_.-]+$/.test(policy)) throw new CommandInputError(`invalid policy name "${policy}": policy names use letters, digits, "_", "-", "."`)
  if (sub === 'list' && rawPatterns.length > 0) throw new CommandInputError('list takes no patterns')
  if (sub !== 'list' && rawPatterns.length === 0) throw new CommandInputError(`${sub} needs at least one pattern`)
  if (values.ttl !== undefined && sub !== 'add') throw new CommandInputError('--ttl only applies to add (expiring allow entries)')
  if (values['dry-run'] && sub !== 'remove' && sub !== 'deny') throw new CommandInputError('--dry-run applies to remove and deny')
  const ttlMs = values.ttl === undefined ? undefined : parseDuration(values.ttl)
  // Before the config is read: a bad --redis is bad input whatever the config says.
  checkRedisFlag(values.redis)

  const loaded = loadConfig(configPath(values.config))
  const policyConfig = loaded.config.policies[policy]
  // A write to a policy the config does not define creates keys no gateway reads (a copied
  // command with another setup's policy name): refused unless asked for explicitly.
  if (policyConfig === undefined && (sub === 'add' || sub === 'deny') && !values['allow-unknown-policy']) {
    throw new CommandInputError(unknownPolicyMessage(policy, loaded))
  }

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
    throw new CommandInputError(`nothing written; invalid pattern${problems.length > 1 ? 's' : ''}:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
  }

  const redisConfig = commandRedisConfig(loaded, values.redis, 'write to')
  if (policyConfig === undefined) console.error(`warning: policy "${policy}" is not defined in ${loaded.file}; gateways using that file ignore its Redis keys`)
  return {
    sub,
    policy,
    patterns: [...new Set(patterns)],
    ttlMs,
    json: values.json,
    dryRun: values['dry-run'],
    prefix: redisConfig.keyPrefix,
    loaded,
    connection: redisConnectionSettings(redisConfig)
  }
}

/** Why a write to `policy` is refused: it names the config and the policies it has. */

/** The Redis to talk to: the config's `redis` section, `--redis URL` winning over its URL. */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** `7d`, `12h`, `1h30m`, `1500ms` → milliseconds. */
export function parseDuration (text: string): number {
  if (!/^(\d+(ms|s|m|h|d|w))+$/.test(text)) throw new CommandInputError(`invalid --ttl "${text}": use a number with a unit (ms, s, m, h, d, w), e.g. 7d, 12h, 1h30m`)
  let total = 0
  for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) total += Number(n) * (UNIT_MS[unit!] ?? 0)
  if (total <= 0) throw new CommandInputError(`invalid --ttl "${text}": must be more than zero`)
  return total
}

function editSummary (plan: Plan, kind: OriginEditKind, { changed, pruned, receivers, expiresAt }: OriginEditResult): string {
  const verb = { add: plan.ttlMs === undefined ? 'added' : 'added (expiring)', remove: 'removed', deny: 'denied', undeny: 'undenied' }[kind]
  const expiry = expiresAt === undefined ? '' : ` until ${new Date(expiresAt).toISOString()}`
  return `${verb} ${plan.patterns.join(', ')}${expiry} on policy ${plan.policy}: ${changed} change${changed === 1 ? '' : 's'}, ${pruned} expired pruned, reload published to ${receivers} subscriber${receivers === 1 ? '' : 's'}`
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
