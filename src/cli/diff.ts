// `corsgate diff --config CANDIDATE [--live FILE] [--redis URL] [--since 24h] [--json]` and
// `corsgate origins remove|deny … --dry-run` (SPEC.md "Observed origins"): every origin the
// replicas observed, judged under the live policy and under the candidate (its file lists plus
// the current Redis lists); the origins whose verdict flips are printed, those a change would
// refuse first, with their request counts.
//
// The live side: `--live FILE` (or $CORSGATE_CONFIG) with the current Redis lists; without
// either, what the gateways actually decided, as the observed counts record it.
// Exit codes: 0 no flip refuses traffic, 1 a flip refuses traffic served now (a CI gate),
// 2 bad input or nothing to judge with (Redis unreadable).
import { parseDuration } from '../config/duration.js'
import { loadConfig, type LoadedConfig } from '../config/load.js'
import type { RawEntry } from '../policy/compile.js'
import { buildSnapshot, type LiveEntries } from '../policy/snapshot.js'
import { RedisObservedReader } from '../observe/observed-reader.js'
import type { ObservedCounts } from '../observe/observed-report.js'
import { diffPolicies, type DiffReport, type Flip } from '../observe/policy-diff.js'
import { RedisOriginLists } from '../sources/origin-lists.js'
import { RedisConfigError, redisConnectionSettings, type RedisConnectionSettings } from '../sources/redis-connection.js'
import { policyKeys } from '../sources/redis-keys.js'
import { CommandInputError, commandRedisConfig, parseCommandArgs } from './redis-settings.js'

export const DIFF_EXIT = { none: 0, breaking: 1, usage: 2 } as const

/** One Redis edit to try without writing (`origins remove|deny --dry-run`). */
export interface DryRunEdit {
  kind: 'remove' | 'deny'
  policy: string
  patterns: string[]
}

interface DiffPlan {
  candidate: LoadedConfig
  live: LoadedConfig | undefined
  since: string
  sinceMs: number
  json: boolean
  connection: RedisConnectionSettings
  prefix: string
  edit?: DryRunEdit
}

export async function runDiffCommand (args: string[]): Promise<number> {
  let plan: DiffPlan
  try {
    plan = planDiff(args)
  } catch (err) {
    if (err instanceof CommandInputError || err instanceof RedisConfigError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      console.error(`corsgate diff: ${(err as Error).message.split('\n')[0]!}`)
      return DIFF_EXIT.usage
    }
    throw err // ConfigError: the CLI prints it and exits 2
  }
  return await runDiff(plan, 'corsgate diff')
}

function planDiff (args: string[]): DiffPlan {
  const { values, positionals } = parseCommandArgs(args, {
    live: { type: 'string' },
    since: { type: 'string', default: '24h' },
    json: { type: 'boolean', default: false }
  })
  if (positionals.length > 0) throw new CommandInputError(`unexpected argument "${positionals[0]!}"`)
  if (values.config === undefined) throw new CommandInputError('--config CANDIDATE is required (the configuration to compare with the live one)')
  const sinceMs = parseDuration(values.since)
  if (sinceMs === undefined) throw new CommandInputError(`invalid --since "${values.since}": use a number with a unit (ms, s, m, h, d, w), e.g. 24h, 7d`)
  const candidate = loadConfig(values.config)
  const liveFile = values.live ?? (process.env.CORSGATE_CONFIG === '' ? undefined : process.env.CORSGATE_CONFIG)
  const live = liveFile === undefined ? undefined : loadConfig(liveFile)
  const redis = commandRedisConfig(values.redis === undefined && candidate.config.redis === undefined && live !== undefined ? live : candidate, values.redis, 'read observed origins and live lists from')
  return {
    candidate,
    live,
    since: values.since,
    sinceMs: Math.min(sinceMs, parseDuration(candidate.config.observe.retention)!),
    json: values.json,
    connection: redisConnectionSettings(redis),
    prefix: redis.keyPrefix
  }
}

/** `origins remove|deny … --dry-run`: the live config is both sides, the edit applied to the candidate's Redis lists. */
export async function runDryRun (loaded: LoadedConfig, connection: RedisConnectionSettings, prefix: string, edit: DryRunEdit, since = '24h'): Promise<number> {
  const sinceMs = Math.min(parseDuration(since)!, parseDuration(loaded.config.observe.retention)!)
  console.log(`dry run: nothing written; ${edit.kind} ${edit.patterns.join(', ')} on policy ${edit.policy} would change, over the last ${since}:`)
  return await runDiff({ candidate: loaded, live: loaded, since, sinceMs, json: false, connection, prefix, edit }, 'corsgate origins')
}

async function runDiff (plan: DiffPlan, label: string): Promise<number> {
  const lists = new RedisOriginLists(plan.connection, plan.prefix)
  const reader = new RedisObservedReader(plan.connection, plan.prefix)
  try {
    await Promise.all([lists.connect(), reader.connect()])
    const names = new Set([...Object.keys(plan.candidate.config.policies), ...Object.keys(plan.live?.config.policies ?? {})])
    const liveEntries = new Map<string, LiveEntries>()
    const observed = new Map<string, ObservedCounts>()
    const now = Date.now()
    for (const name of names) {
      liveEntries.set(name, redisEntries(await lists.list(name, plan.candidate), plan.prefix, name))
      observed.set(name, await reader.counts(name, plan.sinceMs, now))
    }
    const candidateEntries = plan.edit === undefined ? liveEntries : applyEdit(liveEntries, plan.edit, plan.prefix)
    const candidate = buildSnapshot({ config: plan.candidate.config, envOrigins: plan.candidate.envOrigins, live: candidateEntries, version: 0 }, []).policies
    const live = plan.live === undefined ? 'observed' : buildSnapshot({ config: plan.live.config, envOrigins: plan.live.envOrigins, live: liveEntries, version: 0 }, []).policies
    const report = diffPolicies(live, candidate, observed, plan.since, now)
    if (plan.json) console.log(JSON.stringify({ ...report, live: plan.live?.file ?? 'observed', candidate: plan.candidate.file }, null, 2))
    else printDiff(report, plan.live?.file ?? 'the decisions observed', plan.edit === undefined ? plan.candidate.file : 'the edit')
    return report.breaking.requests > 0 ? DIFF_EXIT.breaking : DIFF_EXIT.none
  } catch (err) {
    console.error(`${label}: Redis error (${plan.connection.target}): ${(err as Error).message}`)
    return DIFF_EXIT.usage
  } finally {
    lists.close()
    reader.close()
  }
}

/** The Redis part of a listing, as the gateway's live entries (expired members included: the matcher skips them). */
function redisEntries (listed: Awaited<ReturnType<RedisOriginLists['list']>>, prefix: string, policy: string): LiveEntries {
  const keys = policyKeys(prefix, policy)
  const allow: RawEntry[] = []
  const deny: RawEntry[] = []
  for (const e of listed) {
    if (e.source === 'redis' && e.list === 'allow') allow.push({ value: e.pattern, source: 'redis', where: keys.origins })
    else if (e.source === 'redis-expiring') allow.push({ value: e.pattern, source: 'redis-expiring', where: keys.expiring, ...(e.expiresAt === undefined ? {} : { expiresAt: e.expiresAt }) })
    else if (e.source === 'redis' && e.list === 'deny') deny.push({ value: e.pattern, source: 'redis', where: keys.deny })
  }
  return { allow, deny }
}

function applyEdit (entries: ReadonlyMap<string, LiveEntries>, edit: DryRunEdit, prefix: string): Map<string, LiveEntries> {
  const next = new Map(entries)
  const current = entries.get(edit.policy) ?? { allow: [], deny: [] }
  const patterns = new Set(edit.patterns)
  next.set(edit.policy, edit.kind === 'remove'
    ? { allow: current.allow.filter((e) => !patterns.has(e.value)), deny: current.deny }
    : { allow: current.allow, deny: [...current.deny, ...edit.patterns.map((value) => ({ value, source: 'redis', where: policyKeys(prefix, edit.policy).deny }))] })
  return next
}

function flipLine (f: Flip): string {
  const why = (reason: string, rule: string | null): string => rule === null ? reason : `${reason} ${rule}`
  return `${f.origin ?? '(no Origin)'}  ${f.requests} requests  ${f.from} → ${f.to}  (${why(f.fromReason, f.fromRule)} → ${why(f.toReason, f.toRule)})`
}

export function printDiff (report: DiffReport, liveLabel: string, candidateLabel: string): void {
  console.log(`observed origins since ${report.since}: ${liveLabel} → ${candidateLabel}`)
  if (report.flips.length === 0) console.log('  no origin would change verdict')
  for (const f of report.flips) {
    console.log(`  ${f.breaking ? 'REFUSED' : 'changed'}  policy ${f.policy}  ${flipLine(f)}`)
  }
  for (const [name, u] of Object.entries(report.unjudged)) {
    if (u.other > 0 || u.invalid > 0) console.log(`  policy ${name}: not judged: ${u.other} requests in "other" (past observe.maxOrigins), ${u.invalid} with an invalid Origin`)
  }
  for (const name of report.missingPolicies) console.log(`  policy ${name}: not in the candidate, not judged`)
  console.log(report.breaking.requests > 0
    ? `${report.breaking.origins} origin${report.breaking.origins === 1 ? '' : 's'} served now would be refused (${report.breaking.requests} requests)`
    : 'no traffic served now would be refused')
}
