// What the Redis source knows about itself, for `/readyz`, `/policies` and metrics. Every
// part of the source (connection, subscriber, keyspace detection, reload loop) reports here.
import type { EntryCounts } from './redis-read.js'

export type KeyspaceEvents = 'enabled' | 'disabled' | 'unknown'

export interface RedisSourceState {
  /** The command connection is up. */
  connected: boolean
  /** The pub/sub connection has (re)subscribed the reload channel and keyspace pattern. */
  subscribed: boolean
  /** At least one successful load since start. */
  loaded: boolean
  /** Not known to match Redis right now: not loaded yet, disconnected, or the last read failed. */
  stale: boolean
  /** Unix ms since when the source has been stale. */
  staleSince: number | undefined
  lastError: string | undefined
  /** Unix ms of the last successful read. */
  lastLoadAt: number | undefined
  /** Unix ms of the last swap caused by this source. */
  lastChangeAt: number | undefined
  keyspaceEvents: KeyspaceEvents
  /** Entries read in the last successful load. */
  entries: EntryCounts
  /** Invalid entries and wrong-type keys skipped in the last load. */
  invalidEntries: number
}

/** Holds the state and says every change to `changed`. */
export class RedisSourceStatus {
  readonly current: RedisSourceState

  constructor (private readonly changed: (state: RedisSourceState) => void) {
    this.current = {
      connected: false,
      subscribed: false,
      loaded: false,
      stale: true,
      staleSince: Date.now(),
      lastError: undefined,
      lastLoadAt: undefined,
      lastChangeAt: undefined,
      keyspaceEvents: 'unknown',
      entries: { allow: 0, deny: 0, expiring: 0 },
      invalidEntries: 0
    }
  }

  update (patch: Partial<RedisSourceState>): void {
    Object.assign(this.current, patch)
    this.changed(this.current)
  }

  /** Stale from now on, unless it already was (then since when it became so). */
  markStale (patch: Partial<RedisSourceState>): void {
    this.update({ ...patch, stale: true, staleSince: this.current.stale ? this.current.staleSince : Date.now() })
  }
}
