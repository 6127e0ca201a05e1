// Holds the live `PolicySnapshot` and swaps it whole when a source delivers new entries.
import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import type { LoadedConfig } from '../config/load.js'
import type { EntryError } from '../policy/compile.js'
import { buildSnapshot, type LiveEntries, type PolicySnapshot } from '../policy/snapshot.js'

export interface ReloadRecord {
  source: string
  result: 'ok' | 'partial' | 'error'
  at: number
  errors: number
}

export interface PolicyStoreEvents {
  swap: [snapshot: PolicySnapshot, record: ReloadRecord]
  entryError: [error: EntryError, source: string]
}

export class PolicyStore extends EventEmitter<PolicyStoreEvents> {
  private current: PolicySnapshot
  private live: ReadonlyMap<string, LiveEntries> | undefined
  private config: LoadedConfig
  lastReload: ReloadRecord

  constructor (loaded: LoadedConfig, private readonly log?: Logger) {
    super()
    this.config = loaded
    const errors: EntryError[] = []
    this.current = buildSnapshot({ config: loaded.config, envOrigins: loaded.envOrigins, version: 1 }, errors)
    // The file was validated when loaded, so its entries cannot fail here.
    this.lastReload = { source: 'file', result: 'ok', at: this.current.builtAt, errors: errors.length }
  }

  get snapshot (): PolicySnapshot {
    return this.current
  }

  /** The configuration the policies are compiled from (replaced whole by `replaceConfig`). */
  get loaded (): LoadedConfig {
    return this.config
  }

  /**
   * A new configuration (a config file reload): every policy is compiled again from it, with
   * the live entries of the last dynamic load, and swapped in whole.
   */
  replaceConfig (loaded: LoadedConfig, source: string): ReloadRecord {
    const errors: EntryError[] = []
    const next = buildSnapshot({ config: loaded.config, envOrigins: loaded.envOrigins, live: this.live, version: this.current.version + 1 }, errors)
    this.config = loaded
    return this.swap(next, this.live, source, errors)
  }

  /** Live entries from the last successful load of a dynamic source, by policy. */
  get liveEntries (): ReadonlyMap<string, LiveEntries> | undefined {
    return this.live
  }

  /** Swaps in a snapshot compiled elsewhere (e.g. in slices); `errors` are its skipped entries. */
  swap (next: PolicySnapshot, live: ReadonlyMap<string, LiveEntries> | undefined, source: string, errors: EntryError[]): ReloadRecord {
    for (const e of errors) {
      this.log?.warn({ source, key: e.where, value: e.value, err: e.message }, 'skipped invalid origin entry')
      this.emit('entryError', e, source)
    }
    this.current = next
    this.live = live
    const record: ReloadRecord = { source, result: errors.length > 0 ? 'partial' : 'ok', at: next.builtAt, errors: errors.length }
    this.lastReload = record
    this.emit('swap', next, record)
    return record
  }
}
