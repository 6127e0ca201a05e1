// A `PolicySnapshot` is every compiled policy at one moment. It is built off to the side and
// swapped in whole; a request keeps the snapshot it started with.
import type { Config } from '../config/schema.js'
import { allowRule, compilePolicyWith, fileEntries, parseEntries, type CompiledPolicy, type EntryError, type RawEntry } from './compile.js'
import { OriginMatcherBuilder, type MatcherEntry, type OriginMatcher } from './matcher.js'
import { OriginPatternError, parseOriginPattern, type OriginPattern } from './origin-pattern.js'

/** Live entries of one policy from a dynamic source (Redis). */
export interface LiveEntries {
  allow: RawEntry[]
  deny: RawEntry[]
}

export interface PolicySnapshot {
  readonly policies: ReadonlyMap<string, CompiledPolicy>
  /** Unix ms when this snapshot was built. */
  readonly builtAt: number
  /** Increases by one with each swap. */
  readonly version: number
}

export interface SnapshotInput {
  config: Config
  envOrigins: readonly string[]
  live?: ReadonlyMap<string, LiveEntries> | undefined
  version: number
}

/**
 * The one snapshot build, as steps: a generator that compiles every policy of the config, each
 * with its live entries added, and yields after each batch of entries — a place where a caller
 * may pause. `buildSnapshot` runs it whole; the Redis source runs it in slices
 * (sources/sliced-build.ts) so a large whitelist compiles without blocking requests. Bad live
 * entries are reported in `errors` and skipped; the rest loads. With a `cache`, pattern texts
 * parsed by an earlier build are not parsed again.
 */
export function * snapshotBuild ({ config, envOrigins, live, version }: SnapshotInput, errors: EntryError[], cache?: PatternCache): Generator<void, PolicySnapshot> {
  const policies = new Map<string, CompiledPolicy>()
  for (const [name, policy] of Object.entries(config.policies)) {
    const file = fileEntries(name, policy, name === 'default' ? envOrigins : [])
    const extra = live?.get(name)
    const allow = yield * parseStep(extra === undefined ? file.allow : [...file.allow, ...extra.allow], errors, cache)
    const deny = yield * parseStep(extra === undefined ? file.deny : [...file.deny, ...extra.deny], errors, cache)
    const allowMatcher = yield * matcherStep(allow, allowRule(name, policy, errors))
    const denyMatcher = yield * matcherStep(deny, undefined)
    policies.set(name, compilePolicyWith(name, policy, allowMatcher, denyMatcher))
  }
  cache?.rotate()
  return { policies, builtAt: Date.now(), version }
}

/** `snapshotBuild` run whole, at once. */
export function buildSnapshot (input: SnapshotInput, errors: EntryError[], cache?: PatternCache): PolicySnapshot {
  const steps = snapshotBuild(input, errors, cache)
  let step = steps.next()
  while (step.done !== true) step = steps.next()
  return step.value
}

const PARSE_BATCH = 256
const MATCHER_BATCH = 512

function * parseStep (raw: readonly RawEntry[], errors: EntryError[], cache: PatternCache | undefined): Generator<void, MatcherEntry[]> {
  const out: MatcherEntry[] = []
  for (let i = 0; i < raw.length; i += PARSE_BATCH) {
    const end = Math.min(i + PARSE_BATCH, raw.length)
    if (cache === undefined) {
      for (const entry of parseEntries(raw.slice(i, end), errors)) out.push(entry)
    } else {
      for (let j = i; j < end; j++) {
        const r = raw[j]!
        const entry = cache.entry(r)
        if (entry instanceof OriginPatternError) errors.push({ where: r.where, value: r.value, message: entry.message })
        else out.push(entry)
      }
    }
    yield
  }
  return out
}

/** The matcher of `entries` (those `keep` accepts), built in batches. */
function * matcherStep (entries: readonly MatcherEntry[], keep: ((e: MatcherEntry) => boolean) | undefined): Generator<void, OriginMatcher> {
  const builder = new OriginMatcherBuilder()
  for (let i = 0; i < entries.length; i += MATCHER_BATCH) {
    const end = Math.min(i + MATCHER_BATCH, entries.length)
    for (let j = i; j < end; j++) {
      const entry = entries[j]!
      if (keep === undefined || keep(entry)) builder.add(entry)
    }
    yield
  }
  return builder.build()
}

/**
 * Remembers each pattern text's parse result (pattern or error) across builds, and the
 * matcher entry made from it per source. Patterns and entries are never mutated once made,
 * so sharing them between snapshots is safe; a reload of a large list then parses and
 * allocates only for what changed (less work, and far less garbage to collect).
 * Only the texts used by the latest build are kept: `rotate()` drops the rest.
 */
export class PatternCache {
  private previous = new Map<string, CachedPattern>()
  private current = new Map<string, CachedPattern>()

  /** The matcher entry for `r`, shared with earlier builds when nothing about it changed. */
  entry (r: RawEntry): MatcherEntry | OriginPatternError {
    const cached = this.lookup(r.value)
    const parsed = cached.parsed
    if (parsed instanceof OriginPatternError) return parsed
    // `where` (the Redis key, the file position) travels with the entry: compilePolicy names
    // it when it refuses an entry (a `*` on a credentials policy).
    if (r.expiresAt !== undefined) return { pattern: parsed, source: r.source, expiresAt: r.expiresAt, where: r.where }
    const slot = `${r.source}\n${r.where}`
    let entry = cached.entries.get(slot)
    if (entry === undefined) {
      entry = { pattern: parsed, source: r.source, where: r.where }
      cached.entries.set(slot, entry)
    }
    return entry
  }

  rotate (): void {
    this.previous = this.current
    this.current = new Map()
  }

  get size (): number {
    return this.previous.size
  }

  private lookup (text: string): CachedPattern {
    let hit = this.current.get(text)
    if (hit !== undefined) return hit
    hit = this.previous.get(text)
    if (hit === undefined) {
      let parsed: OriginPattern | OriginPatternError
      try {
        parsed = parseOriginPattern(text)
      } catch (err) {
        if (!(err instanceof OriginPatternError)) throw err
        parsed = err
      }
      hit = { parsed, entries: new Map() }
    }
    this.current.set(text, hit)
    return hit
  }
}

interface CachedPattern {
  parsed: OriginPattern | OriginPatternError
  /** Entry per source and place (`redis` + its key, `file` + its index), for entries that do not expire. */
  entries: Map<string, MatcherEntry>
}
