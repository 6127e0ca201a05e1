// A `PolicySnapshot` is every compiled policy at one moment. It is built off to the side and
// swapped in whole; a request keeps the snapshot it started with.
import type { Config } from '../config/schema.js'
import { compilePolicy, fileEntries, parseEntries, type CompiledPolicy, type EntryError, type RawEntry } from './compile.js'

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
