// The reload loop: reload requests (channel, keyspace event, poll, reconnect, expiry) are
// coalesced into one single-flight loop, so a burst of 100 edits costs at most two reads and
// two compiles, never 100. A read that fails keeps the last good snapshot in force (never
// fail open, never drop to empty because of an error); a read that succeeds is compiled to
// the side in slices and swapped in whole.
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { EntryError, RawEntry } from '../policy/compile.js'
import { PatternCache, type LiveEntries } from '../policy/snapshot.js'
import type { PolicyStore, ReloadRecord } from './policy-store.js'
import { sameRead, type PolicyRead, type RawRead } from './redis-read.js'
import type { RedisSourceStatus } from './redis-state.js'
import { buildSnapshotInSlices } from './sliced-build.js'

export interface ReloadLoopOptions {
  source: string
  target: string
  store: PolicyStore
  log: Logger
  status: RedisSourceStatus
  /** Window in which reload requests are merged into one read (ms). */
  coalesceMs: number
  /** The command connection, when it is up. */
  client: () => Redis | undefined
  read: (client: Redis) => Promise<PolicyRead>
  /** A read succeeded (`record` is undefined when nothing had changed and nothing was swapped). */
  loaded: (record: ReloadRecord | undefined) => void
  loadError: (err: Error) => void
}

export class RedisReloadLoop {
  private readonly o: ReloadLoopOptions
  private coalesceTimer: NodeJS.Timeout | undefined
  private expiryTimer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  /** Why the next reload was asked for (the log line names them). */
  private readonly reasons = new Set<string>()
  private pendingExpiry = false
  private stopped = false
  private lastRead: RawRead | undefined
  // A reload of a large list only parses the entries that changed.
  private readonly patterns = new PatternCache()

  constructor (options: ReloadLoopOptions) {
    this.o = options
  }

  /** Asks for a full resync soon; requests arriving meanwhile are merged into one. */
  request (reason: string): void {
    if (this.stopped) return
    if (reason === 'expiry') this.pendingExpiry = true
    this.reasons.add(reason)
    this.schedule()
  }

  /** One reload at a time, after `coalesceMs`; the log names every reason it answers. */
  private schedule (): void {
    if (this.running !== undefined || this.coalesceTimer !== undefined) return
    this.coalesceTimer = setTimeout(() => {
      this.coalesceTimer = undefined
      const reason = [...this.reasons].join(',')
      this.reasons.clear()
      this.running = this.reload(reason).finally(() => {
        this.running = undefined
        // Asked for while this one ran: read again, or the ask would be lost.
        if (this.reasons.size > 0 && !this.stopped) this.schedule()
      })
    }, this.o.coalesceMs)
  }

  /** Stops asking for reloads; resolves when the reload under way (if any) has ended. */
  async stop (): Promise<void> {
    this.stopped = true
    clearTimeout(this.coalesceTimer)
    clearTimeout(this.expiryTimer)
    await this.running
  }

  private async reload (reason: string): Promise<void> {
    const { store, log, status } = this.o
    const expiry = this.pendingExpiry
    this.pendingExpiry = false
    const client = this.o.client()
    if (client === undefined || client.status !== 'ready') {
      // Disconnected: the state already says stale; reconnecting triggers a resync. Expired
      // entries already stop matching; drop them from the view without Redis.
      if (expiry) await this.pruneExpiredLocally()
      return
    }
    const started = performance.now()
    let read: PolicyRead
    try {
      read = await this.o.read(client)
    } catch (err) {
      if (this.stopped) return
      this.loadFailed(err as Error)
      if (expiry) await this.pruneExpiredLocally()
      return
    }
    if (this.stopped) return
    // Let requests that waited behind the last reply through before the compile starts.
    await yieldToEventLoop()
    const now = Date.now()
    const unchanged = status.current.loaded && this.lastRead !== undefined && sameRead(this.lastRead, read.raw)
    let record: ReloadRecord | undefined
    if (!unchanged) {
      const readErrors = read.errors
      let next
      for (;;) {
        const loaded = store.loaded
        read.errors = readErrors.slice()
        next = await buildSnapshotInSlices({ config: loaded.config, envOrigins: loaded.envOrigins, live: read.live, version: store.snapshot.version + 1 }, read.errors, { cache: this.patterns })
        if (this.stopped) return
        // The config was reloaded during the compile: compile again, so it is not undone.
        if (store.loaded === loaded) break
      }
      record = store.swap(next, read.live, this.o.source, read.errors)
      this.lastRead = read.raw
      this.scheduleExpiry(read.live)
      log.info({ reason, version: next.version, ...read.counts, invalid: read.errors.length, ms: Math.round(performance.now() - started) }, 'redis whitelist loaded')
    } else {
      log.debug({ reason }, 'redis whitelist unchanged')
    }
    const recovered = status.current.stale
    status.update({
      loaded: true,
      stale: false,
      staleSince: undefined,
      lastError: undefined,
      lastLoadAt: now,
      ...(record === undefined ? {} : { lastChangeAt: record.at, entries: read.counts, invalidEntries: read.errors.length })
    })
    if (recovered) log.info({ redis: this.o.target }, 'redis source fresh')
    this.o.loaded(record)
  }

  private loadFailed (err: Error): void {
    this.o.log.warn({ redis: this.o.target, err: err.message }, 'redis reload failed; keeping the last good whitelist')
    this.o.status.markStale({ lastError: err.message })
    this.o.loadError(err)
  }

  /** A timer for the earliest expiry, so `/policies` and metrics follow without waiting for a poll. */
  private scheduleExpiry (live: ReadonlyMap<string, LiveEntries>): void {
    clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
    const now = Date.now()
    let next: number | undefined
    for (const entries of live.values()) {
      for (const e of entries.allow) if (e.expiresAt !== undefined && e.expiresAt > now && (next === undefined || e.expiresAt < next)) next = e.expiresAt
    }
    if (next === undefined || this.stopped) return
    // setTimeout takes at most 2^31-1 ms; a far expiry is re-planned when the timer fires.
    const delay = Math.min(next - now + 1, 24 * 3600 * 1000)
    this.expiryTimer = setTimeout(() => this.request('expiry'), delay)
    this.expiryTimer.unref()
  }

  /** Drops expired entries from the live view without Redis (used while Redis is away). */
  private async pruneExpiredLocally (): Promise<void> {
    const { store } = this.o
    const current = store.liveEntries
    if (current === undefined) return
    const now = Date.now()
    let dropped = 0
    const live = new Map<string, LiveEntries>()
    for (const [name, entries] of current) {
      const allow = entries.allow.filter((e: RawEntry) => e.expiresAt === undefined || e.expiresAt > now)
      dropped += entries.allow.length - allow.length
      live.set(name, { allow, deny: entries.deny })
    }
    if (dropped > 0) {
      const errors: EntryError[] = []
      const loaded = store.loaded
      const next = await buildSnapshotInSlices({ config: loaded.config, envOrigins: loaded.envOrigins, live, version: store.snapshot.version + 1 }, errors, { cache: this.patterns })
      // Stopped, or the config was reloaded meanwhile (expired entries stop matching anyway).
      if (this.stopped || store.loaded !== loaded) return
      // Same entries as before minus the expired ones: their errors were reported already.
      store.swap(next, live, this.o.source, [])
      this.lastRead = undefined
      this.o.log.info({ expired: dropped }, 'expired Redis origins dropped')
    }
    this.scheduleExpiry(live)
  }
}

/**
 * Lets timers and waiting I/O (requests) run before continuing. Called right after a reply
 * arrived (poll phase), one `setImmediate` would resolve in the check phase of the same loop
 * turn, before any timer or socket: the decode and what follows would be one block. The
 * second one runs only after a full turn (timers, then poll).
 */
async function yieldToEventLoop (): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve))
  await new Promise<void>((resolve) => setImmediate(resolve))
}
