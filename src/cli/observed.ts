// `corsgate origins observed --policy NAME [--since 24h] [--outcome O] [--json] [--redis URL] [--config FILE]`
// (SPEC.md "Observed origins"): the origins every replica has seen calling a policy, summed in
// Redis, as a table a person can read or as the JSON of `GET /observed`.
// Exit codes: 0 ok, 1 Redis error, 2 bad input (one line).
import { parseDuration } from '../config/duration.js'
import { loadConfig } from '../config/load.js'
import { RedisObservedReader } from '../observe/observed-reader.js'
import { observedReport, parseOutcome, type ObservedOrigin, type ObservedReport } from '../observe/observed-report.js'
import { RedisConfigError, redisConnectionSettings } from '../sources/redis-connection.js'
import { CommandInputError, commandRedisConfig, parseCommandArgs } from './redis-settings.js'

const EXIT = { ok: 0, redis: 1, usage: 2 } as const

export async function runObservedCommand (args: string[], configPath: (flag: string | undefined) => string): Promise<number> {
  let plan: ReturnType<typeof planObserved>
  try {
    plan = planObserved(args, configPath)
  } catch (err) {
    if (err instanceof CommandInputError || err instanceof RedisConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      console.error(`corsgate origins observed: ${(err as Error).message.split('\n')[0]!}`)
      return EXIT.usage
    }
    throw err
  }
  const reader = new RedisObservedReader(plan.connection, plan.redis.keyPrefix)
  try {
    await reader.connect()
    const report = observedReport(plan.policy, plan.since, await reader.counts(plan.policy, plan.sinceMs), plan.outcome)
    if (plan.json) console.log(JSON.stringify(report, null, 2))
    else printReport(report, plan.connection.target)
    return EXIT.ok
  } catch (err) {
    console.error(`corsgate origins observed: Redis error (${plan.connection.target}): ${(err as Error).message}`)
    return EXIT.redis
  } finally {
    reader.close()
  }
}

function planObserved (args: string[], configPath: (flag: string | undefined) => string) {
  const { values, positionals } = parseCommandArgs(args, {
    policy: { type: 'string', short: 'p' },
    since: { type: 'string', default: '24h' },
    outcome: { type: 'string' },
    json: { type: 'boolean', default: false }
  })
  if (positionals.length > 0) throw new CommandInputError(`unexpected argument "${positionals[0]!}"`)
  const policy = values.policy
  if (policy === undefined) throw new CommandInputError('--policy NAME is required')
  if (!/^[A-Za-z0-9_.-]+$/.test(policy)) throw new CommandInputError(`invalid policy name "${policy}": policy names use letters, digits, "_", "-", "."`)
  const sinceMs = parseDuration(values.since)
  if (sinceMs === undefined) throw new CommandInputError(`invalid --since "${values.since}": use a number with a unit (ms, s, m, h, d, w), e.g. 24h, 7d`)
  const outcome = parseOutcome(values.outcome)
  if (outcome instanceof Error) throw new CommandInputError(`invalid --outcome: ${outcome.message}`)
  const loaded = loadConfig(configPath(values.config))
  const redis = commandRedisConfig(loaded, values.redis, 'read observed origins from')
  if (!(policy in loaded.config.policies)) console.error(`warning: policy "${policy}" is not defined in ${loaded.file}`)
  // Older buckets have expired: a longer window would only read keys that are gone.
  const window = Math.min(sinceMs, parseDuration(loaded.config.observe.retention)!)
  return { policy, since: values.since, sinceMs: window, outcome, json: values.json, redis, connection: redisConnectionSettings(redis) }
}

/** The outcome a person reads first: the only one, or each with its count, most first. */
function outcomeText (o: ObservedOrigin): string {
  const seen = Object.entries(o.outcomes).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1])
  return seen.length === 1 ? seen[0]![0] : seen.map(([name, n]) => `${name} ${n}`).join(', ')
}

function printReport (report: ObservedReport, target: string): void {
  console.log(`policy ${report.policy} · since ${report.since} · ${target}`)
  if (report.origins.length === 0) console.log('  (no requests observed)')
  else {
    const rows = report.origins.map((o) => [o.origin ?? '(no Origin)', String(o.requests), outcomeText(o), Object.keys(o.reasons)[0] ?? '', o.lastSeen ?? ''])
    const head = ['ORIGIN', 'REQUESTS', 'OUTCOME', 'REASON', 'LAST SEEN']
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
    const line = (cells: string[]): string => `  ${cells.map((c, i) => i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)).join('  ').trimEnd()}`
    console.log(line(head))
    for (const r of rows) console.log(line(r))
  }
  console.log(`  other (past observe.maxOrigins): ${report.other} · invalid Origin headers: ${report.invalid}`)
}
