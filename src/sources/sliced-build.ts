// The sliced snapshot build the Redis source uses. It lives here, not in policy/, because it
// schedules (yields to the event loop); the pure pieces it runs are policy/'s.
import { allowRule, compilePolicyWith, fileEntries, parseEntries, type CompiledPolicy, type EntryError, type RawEntry } from '../policy/compile.js'
import { OriginMatcherBuilder, type MatcherEntry, type OriginMatcher } from '../policy/matcher.js'
import { OriginPatternError } from '../policy/origin-pattern.js'
import type { PatternCache, PolicySnapshot, SnapshotInput } from '../policy/snapshot.js'

/** How long one slice of a sliced build may run before it yields to the event loop (ms). */
export const SLICE_BUDGET_MS = 8

/**
 * `buildSnapshot` for large live lists: entries are parsed in slices of at most
 * `sliceBudgetMs`, yielding to the event loop (`setImmediate`) between slices, so requests
 * keep being answered while a 100k-entry whitelist compiles. Same result as `buildSnapshot`.
 */
export async function buildSnapshotInSlices ({ config, envOrigins, live, version }: SnapshotInput, errors: EntryError[], { sliceBudgetMs = SLICE_BUDGET_MS, cache }: SliceOptions = {}): Promise<PolicySnapshot> {
  const slicer = new Slicer(sliceBudgetMs)
  const policies = new Map<string, CompiledPolicy>()
  for (const [name, policy] of Object.entries(config.policies)) {
    const file = fileEntries(name, policy, name === 'default' ? envOrigins : [])
    const extra = live?.get(name)
    const allow = await parseEntriesInSlices(extra === undefined ? file.allow : [...file.allow, ...extra.allow], errors, slicer, cache)
    const deny = await parseEntriesInSlices(extra === undefined ? file.deny : [...file.deny, ...extra.deny], errors, slicer, cache)
    // The matchers are built in slices too (same order, same errors as compilePolicy).
    const allowMatcher = await buildMatcherInSlices(allow, allowRule(name, policy, errors), slicer)
    const denyMatcher = await buildMatcherInSlices(deny, undefined, slicer)
    policies.set(name, compilePolicyWith(name, policy, allowMatcher, denyMatcher))
  }
  cache?.rotate()
  return { policies, builtAt: Date.now(), version }
}

export interface SliceOptions {
  /** How long one slice may run before yielding (ms). */
  sliceBudgetMs?: number
  /** Parsed patterns of the previous build, so a reload only parses what changed. */
  cache?: PatternCache
}

async function parseEntriesInSlices (raw: readonly RawEntry[], errors: EntryError[], slicer: Slicer, cache: PatternCache | undefined): Promise<MatcherEntry[]> {
  const out: MatcherEntry[] = []
  const CHUNK = 256
  for (let i = 0; i < raw.length; i += CHUNK) {
    const end = Math.min(i + CHUNK, raw.length)
    if (cache === undefined) {
      for (const entry of parseEntries(raw.slice(i, end), errors)) out.push(entry)
    } else {
      // Same result as parseEntries, with each text parsed once across builds.
      for (let j = i; j < end; j++) {
        const r = raw[j]!
        const entry = cache.entry(r)
        if (entry instanceof OriginPatternError) errors.push({ where: r.where, value: r.value, message: entry.message })
        else out.push(entry)
      }
    }
    await slicer.maybeYield()
  }
  return out
}

async function buildMatcherInSlices (entries: readonly MatcherEntry[], keep: ((e: MatcherEntry) => boolean) | undefined, slicer: Slicer): Promise<OriginMatcher> {
  const builder = new OriginMatcherBuilder()
  const CHUNK = 512
  for (let i = 0; i < entries.length; i += CHUNK) {
    const end = Math.min(i + CHUNK, entries.length)
    for (let j = i; j < end; j++) {
      const entry = entries[j]!
      if (keep === undefined || keep(entry)) builder.add(entry)
    }
    await slicer.maybeYield()
  }
  return builder.build()
}

class Slicer {
  private sliceStart = performance.now()
  constructor (private readonly budgetMs: number) {}

  async maybeYield (): Promise<void> {
    if (performance.now() - this.sliceStart >= this.budgetMs) await this.yieldNow()
  }

  async yieldNow (): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve))
    this.sliceStart = performance.now()
  }
}
