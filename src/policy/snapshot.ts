// A `PolicySnapshot` is every compiled policy at one moment. It is built off to the side and
// swapped in whole; a request keeps the snapshot it started with.
import type { Config } from '../config/schema.js'
import { compilePolicy, fileEntries, parseEntries, type CompiledPolicy, type EntryError, type RawEntry } from './compile.js'
import type { MatcherEntry } from './matcher.js'

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
 * Compiles every policy of the config, each with its live entries added. Bad live entries are
 * reported in `errors` and skipped; the rest loads.
 */
export function buildSnapshot ({ config, envOrigins, live, version }: SnapshotInput, errors: EntryError[]): PolicySnapshot {
  const policies = new Map<string, CompiledPolicy>()
  for (const [name, policy] of Object.entries(config.policies)) {
    const file = fileEntries(name, policy, name === 'default' ? envOrigins : [])
    const extra = live?.get(name)
    const allow = parseEntries(extra === undefined ? file.allow : [...file.allow, ...extra.allow], errors)
    const deny = parseEntries(extra === undefined ? file.deny : [...file.deny, ...extra.deny], errors)
    policies.set(name, compilePolicy({ name, config: policy, allow, deny }, errors))
  }
  return { policies, builtAt: Date.now(), version }
}

/** How long one slice of a sliced build may run before it yields to the event loop (ms). */
export const SLICE_BUDGET_MS = 8

/**
 * `buildSnapshot` for large live lists: entries are parsed in slices of at most
 * `sliceBudgetMs`, yielding to the event loop (`setImmediate`) between slices, so requests
 * keep being answered while a 100k-entry whitelist compiles. Same result as `buildSnapshot`.
 */
export async function buildSnapshotInSlices ({ config, envOrigins, live, version }: SnapshotInput, errors: EntryError[], sliceBudgetMs = SLICE_BUDGET_MS): Promise<PolicySnapshot> {
  const slicer = new Slicer(sliceBudgetMs)
  const policies = new Map<string, CompiledPolicy>()
  for (const [name, policy] of Object.entries(config.policies)) {
    const file = fileEntries(name, policy, name === 'default' ? envOrigins : [])
    const extra = live?.get(name)
    const allow = await parseEntriesInSlices(extra === undefined ? file.allow : [...file.allow, ...extra.allow], errors, slicer)
    const deny = await parseEntriesInSlices(extra === undefined ? file.deny : [...file.deny, ...extra.deny], errors, slicer)
    await slicer.yieldNow()
    policies.set(name, compilePolicy({ name, config: policy, allow, deny }, errors))
  }
  return { policies, builtAt: Date.now(), version }
}

async function parseEntriesInSlices (raw: readonly RawEntry[], errors: EntryError[], slicer: Slicer): Promise<MatcherEntry[]> {
  const out: MatcherEntry[] = []
  const CHUNK = 256
  for (let i = 0; i < raw.length; i += CHUNK) {
    for (const entry of parseEntries(raw.slice(i, i + CHUNK), errors)) out.push(entry)
    await slicer.maybeYield()
  }
  return out
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
