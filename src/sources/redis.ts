// `RedisPolicySource`: live whitelists from Redis (SPEC.md "Redis: live whitelists").
//
// Change detection runs three ways at once, and any of them only *requests* a reload:
//  - the reload channel `{prefix}reload` (SUBSCRIBE on a second connection),
//  - keyspace notifications on `{prefix}policy:*` (PSUBSCRIBE; they arrive only when the
//    server has `notify-keyspace-events` on, which we detect but never require),
//  - a poll every `pollIntervalMs`, the safety net that always runs.
// Requests are coalesced into one single-flight loop: a burst of 100 edits costs at most
// two reads and two compiles, never 100. Every read is a full resync of every policy (small
// keys in one MULTI, large ones in SCAN pages), compiled to the side in slices and swapped in whole.
//
// Redis is never on the request path: requests only ever read the store's current snapshot.
// When Redis is down, slow or failing, the last good snapshot stays in force (never fail
// open, never drop to empty because of an error) and the state says stale since when.
import { EventEmitter } from 'node:events'
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import type { RedisConfig } from '../config/schema.js'
import type { EntryError, RawEntry } from '../policy/compile.js'
import { PatternCache, type LiveEntries } from '../policy/snapshot.js'
import type { PolicyStore, ReloadRecord } from './policy-store.js'
import { reconnectBackoff, redisConnectionSettings } from './redis-connection.js'
import { keyspacePattern, policyKeys, policyOfKey, reloadChannel } from './redis-keys.js'
import { buildSnapshotInSlices } from './sliced-build.js'

export const SOURCE = 'redis'

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
  entries: { allow: number, deny: number, expiring: number }
  /** Invalid entries and wrong-type keys skipped in the last load. */
  invalidEntries: number
}

export interface RedisPolicySourceEvents {
  state: [state: RedisSourceState]
  /** A read succeeded (`record` is undefined when nothing had changed and nothing was swapped). */
  loaded: [record: ReloadRecord | undefined]
  loadError: [err: Error]
}

export interface RedisPolicySourceOptions {
  redis: RedisConfig
  store: PolicyStore
  logger: Logger
  env?: Record<string, string | undefined>
  /** Window in which reload requests are merged into one read (ms). */
  coalesceMs?: number
}

/** What one read of every policy's keys returned, kept to skip recompiling an unchanged list. */
type RawRead = Array<string | string[]>

export class RedisPolicySource extends EventEmitter<RedisPolicySourceEvents> {
  readonly target: string
  private readonly redis: RedisConfig
  private readonly store: PolicyStore
  private readonly log: Logger
  private readonly prefix: string
  private readonly channel: string
  private readonly pattern: string
  private readonly options: RedisOptions
  private readonly coalesceMs: number
  private client: Redis | undefined
  private subscriber: Redis | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private coalesceTimer: NodeJS.Timeout | undefined
  private expiryTimer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private pending = false
  private pendingExpiry = false
  private stopped = false
  private lastRead: RawRead | undefined
  private outageLogged = false
  /** Keyspace detection has answered at least once (its first answer is always logged). */
  private keyspaceKnown = false
  private readonly unknownPolicies = new Set<string>()
  // A reload of a large list only parses the entries that changed.
  private readonly patterns = new PatternCache()
  private readonly st: RedisSourceState

  constructor ({ redis, store, logger, env = process.env, coalesceMs = 2 }: RedisPolicySourceOptions) {
    super()
    this.redis = redis
    this.store = store
    this.log = logger.child({ source: SOURCE })
    this.prefix = redis.keyPrefix
    const settings = redisConnectionSettings(redis, env)
    this.target = settings.target
    this.channel = reloadChannel(this.prefix)
    this.pattern = keyspacePattern(this.prefix, settings.db)
    this.coalesceMs = coalesceMs
    this.options = {
      ...settings.options,
      retryStrategy: reconnectBackoff(redis.reconnectMaxDelayMs),
      // Nothing waits for Redis: a command on a down connection fails at once, and the next
      // (re)connect triggers a full resync anyway.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      // We resubscribe ourselves on every `ready`, then resync (events sent while we were
      // disconnected are lost).
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false
    }
    const now = Date.now()
    this.st = {
      connected: false,
      subscribed: false,
      loaded: false,
      stale: true,
      staleSince: now,
      lastError: undefined,
      lastLoadAt: undefined,
      lastChangeAt: undefined,
      keyspaceEvents: 'unknown',
      entries: { allow: 0, deny: 0, expiring: 0 },
      invalidEntries: 0
    }
  }

  /** The policies whose keys are read: those of the store's current config (a reload may change them). */
  private get policyNames (): string[] {
    return Object.keys(this.store.loaded.config.policies)
  }

  get state (): Readonly<RedisSourceState> {
    return this.st
  }

  /** Connects and starts watching. Returns at once: the first load happens in the background. */
  start (): void {
    this.log.info({ redis: this.target, keyPrefix: this.prefix, pollIntervalMs: this.redis.pollIntervalMs }, 'redis source starting')
    this.client = this.connectCommandClient()
    this.subscriber = this.connectSubscriber()
    this.pollTimer = setInterval(() => this.poll(), this.redis.pollIntervalMs)
    this.pollTimer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.pollTimer)
    clearTimeout(this.coalesceTimer)
    clearTimeout(this.expiryTimer)
    this.client?.disconnect()
    this.subscriber?.disconnect()
    await this.running
  }

  /** Asks for a full resync soon; requests arriving meanwhile are merged into one. */
  requestReload (reason: string): void {
    if (this.stopped) return
    if (reason === 'expiry') this.pendingExpiry = true
    if (this.running !== undefined) {
      this.pending = true
      return
    }
    if (this.coalesceTimer !== undefined) return
    this.coalesceTimer = setTimeout(() => {
      this.coalesceTimer = undefined
      this.running = this.reload(reason).finally(() => {
        this.running = undefined
        if (this.pending && !this.stopped) {
          this.pending = false
          this.requestReload('coalesced')
        }
      })
    }, this.coalesceMs)
  }

  private connectCommandClient (): Redis {
    const client = new Redis({ ...this.options, connectionName: 'corsgate' })
    client.on('ready', () => {
      this.outageLogged = false
      this.log.info({ redis: this.target }, 'redis connected')
      this.update({ connected: true })
      void this.detectKeyspaceEvents(client).finally(() => this.requestReload('connect'))
    })
    client.on('close', () => {
      if (this.stopped || !this.st.connected) return
      this.log.warn({ redis: this.target, lastError: this.st.lastError }, 'redis connection lost; serving the last good whitelist')
      this.markStale({ connected: false })
    })
    client.on('error', (err: Error) => this.connectionError(err))
    return client
  }

  private connectSubscriber (): Redis {
    const sub = new Redis({ ...this.options, connectionName: 'corsgate-sub' })
    sub.on('ready', () => {
      void (async () => {
        try {
          await sub.subscribe(this.channel)
        } catch (err) {
          this.connectionError(err as Error)
          return
        }
        // Keyspace events are a bonus: an ACL that refuses the pattern must not cost us the channel.
        try {
          await sub.psubscribe(this.pattern)
        } catch (err) {
          this.log.info({ pattern: this.pattern, err: (err as Error).message }, 'PSUBSCRIBE to keyspace events refused; the reload channel and polling still apply')
        }
        this.log.debug({ channel: this.channel, pattern: this.pattern }, 'redis subscribed')
        this.update({ subscribed: true })
        // Anything published while we were not subscribed is lost: resync.
        this.requestReload('subscribed')
      })()
    })
    sub.on('close', () => { if (this.st.subscribed) this.update({ subscribed: false }) })
    sub.on('error', (err: Error) => this.connectionError(err))
    sub.on('message', (channel: string, message: string) => {
      if (channel !== this.channel) return
      const name = message.trim()
      if (name === '*' || this.policyNames.includes(name)) this.requestReload('channel')
      else this.ignoreUnknown(name, 'reload message')
    })
    sub.on('pmessage', (_pattern: string, channel: string) => {
      const key = channel.slice(channel.indexOf(':') + 1)
      const name = policyOfKey(this.prefix, key)
      if (name === undefined) return
      if (this.policyNames.includes(name)) this.requestReload('keyspace')
      else this.ignoreUnknown(name, 'keyspace event')
    })
    return sub
  }

  private connectionError (err: Error): void {
    if (this.stopped) return
    this.st.lastError = err.message
    // One warning per outage; the retries that follow are debug noise.
    if (!this.outageLogged) {
      this.outageLogged = true
      this.log.warn({ redis: this.target, err: err.message }, 'redis error; retrying with backoff')
    } else {
      this.log.debug({ redis: this.target, err: err.message }, 'redis error')
    }
    this.emit('state', this.st)
  }

  private ignoreUnknown (name: string, via: string): void {
    if (this.unknownPolicies.has(name)) return
    this.unknownPolicies.add(name)
    this.log.debug({ policy: name, via }, 'ignoring Redis keys of a policy that is not in the config')
  }

  /**
   * Keyspace notifications are used when the server has them on. We only read the setting
   * (CONFIG may be refused on managed Redis) and set it only when the config asks to.
   * The PSUBSCRIBE is made either way: it costs nothing, and catches a server whose
   * notifications are on but whose CONFIG we may not read. Read again on every poll, so
   * `/readyz` follows an operator who turns them on (or off) while corsgate runs; logged
   * only when the answer changes.
   */
  private async detectKeyspaceEvents (client: Redis): Promise<void> {
    let flags: string
    try {
      flags = configValue(await client.config('GET', 'notify-keyspace-events'))
    } catch (err) {
      this.keyspaceState('unknown', () => this.log.info({ err: (err as Error).message }, 'CONFIG GET refused: cannot tell whether keyspace notifications are on (the reload channel and polling still apply)'))
      return
    }
    if (coversPolicyKeys(flags)) {
      this.keyspaceState('enabled', () => this.log.info({ flags }, 'keyspace notifications are on: edits are in force at once'))
      return
    }
    if (this.redis.enableKeyspaceEvents) {
      const wanted = mergeFlags(flags, 'Kgsz')
      try {
        await client.config('SET', 'notify-keyspace-events', wanted)
        this.keyspaceState('enabled', () => this.log.info({ flags: wanted }, 'keyspace notifications turned on (redis.enableKeyspaceEvents)'))
        return
      } catch (err) {
        if (this.st.keyspaceEvents !== 'disabled') this.log.warn({ err: (err as Error).message }, 'CONFIG SET notify-keyspace-events refused; relying on the reload channel and polling')
      }
    }
    this.keyspaceState('disabled', () => this.log.info({ flags }, 'keyspace notifications are off on the server: edits propagate by the reload channel, or by polling'))
  }

  /** Records what detection found; `say` logs it, only when it differs from the last finding. */
  private keyspaceState (found: KeyspaceEvents, say: () => void): void {
    if (found === this.st.keyspaceEvents && this.keyspaceKnown) return
    this.keyspaceKnown = true
    say()
    this.update({ keyspaceEvents: found })
  }

  /** The poll: read the keyspace setting again (cheap), then resync. */
  private poll (): void {
    const client = this.client
    if (client !== undefined && client.status === 'ready' && !this.stopped) void this.detectKeyspaceEvents(client).catch(() => {})
    this.requestReload('poll')
  }

  private async reload (reason: string): Promise<void> {
    const expiry = this.pendingExpiry
    this.pendingExpiry = false
    const client = this.client
    if (client === undefined || client.status !== 'ready') {
      // Disconnected: the state already says stale; reconnecting triggers a resync. Expired
      // entries already stop matching; drop them from the view without Redis.
      if (expiry) await this.pruneExpiredLocally()
      return
    }
    const started = performance.now()
    let read: { raw: RawRead, live: Map<string, LiveEntries>, errors: EntryError[], counts: RedisSourceState['entries'] }
    try {
      read = await this.readAll(client)
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
    const unchanged = this.st.loaded && this.lastRead !== undefined && sameRead(this.lastRead, read.raw)
    let record: ReloadRecord | undefined
    if (!unchanged) {
      const readErrors = read.errors
      let next
      for (;;) {
        const loaded = this.store.loaded
        read.errors = readErrors.slice()
        next = await buildSnapshotInSlices({ config: loaded.config, envOrigins: loaded.envOrigins, live: read.live, version: this.store.snapshot.version + 1 }, read.errors, { cache: this.patterns })
        if (this.stopped) return
        // The config was reloaded during the compile: compile again, so it is not undone.
        if (this.store.loaded === loaded) break
      }
      record = this.store.swap(next, read.live, SOURCE, read.errors)
      this.lastRead = read.raw
      this.scheduleExpiry(read.live)
      this.log.info({ reason, version: next.version, ...read.counts, invalid: read.errors.length, ms: Math.round(performance.now() - started) }, 'redis whitelist loaded')
    } else {
      this.log.debug({ reason }, 'redis whitelist unchanged')
    }
    const recovered = this.st.stale
    this.update({
      loaded: true,
      stale: false,
      staleSince: undefined,
      lastError: undefined,
      lastLoadAt: now,
      ...(record === undefined ? {} : { lastChangeAt: record.at, entries: read.counts, invalidEntries: read.errors.length })
    })
    if (recovered) this.log.info({ redis: this.target }, 'redis source fresh')
    this.emit('loaded', record)
  }

  /**
   * Reads every policy's keys at one consistent moment. Under `WATCH` on every key: the sizes
   * (SCARD/ZCARD), then keys holding more than `ATOMIC_READ_BUDGET` members in all in
   * SSCAN/ZSCAN pages of `SCAN_PAGE` (decoding a 100k-member reply in one go blocks the event
   * loop for tens of milliseconds), then the small keys in one MULTI. If any key changed
   * meanwhile, EXEC aborts and the read starts again, so an allow list from before an edit is
   * never combined with a deny list from after it. After `READ_ATTEMPTS` aborted reads the read
   * fails, and the last good whitelist stays.
   */
  private async readAll (client: Redis): Promise<{ raw: RawRead, live: Map<string, LiveEntries>, errors: EntryError[], counts: RedisSourceState['entries'] }> {
    for (let attempt = 1; ; attempt++) {
      const reads = await this.readKeys(client)
      if (reads !== undefined) return await this.toEntries(client, reads)
      if (attempt === READ_ATTEMPTS) throw new Error(`the policy keys changed during ${READ_ATTEMPTS} reads in a row`)
      this.log.debug({ attempt }, 'policy keys changed during the read; reading again')
    }
  }

  /** One watched read of every key; undefined when a key changed during it (EXEC aborted). */
  private async readKeys (client: Redis): Promise<KeyRead[] | undefined> {
    const now = Date.now()
    const reads: KeyRead[] = []
    for (const name of this.policyNames) {
      const keys = policyKeys(this.prefix, name)
      reads.push({ policy: name, key: keys.origins, kind: 'allow' }, { policy: name, key: keys.deny, kind: 'deny' }, { policy: name, key: keys.expiring, kind: 'expiring' })
    }
    await client.watch(reads.map((r) => r.key))
    try {
      const sizing = client.pipeline()
      for (const r of reads) {
        if (r.kind === 'expiring') sizing.zcard(r.key)
        else sizing.scard(r.key)
      }
      // A pipeline, not a MULTI: an EXEC here would end the watch.
      const sizes = (await sizing.exec()) ?? []
      const atomic: KeyRead[] = []
      const paged: KeyRead[] = []
      let budget = ATOMIC_READ_BUDGET
      reads.forEach((r, i) => {
        const [err, size] = sizes[i] ?? [new Error('no reply'), null]
        if (err !== null) return noteWrongType(r, err)
        const n = Number(size)
        if (n === 0) r.members = []
        else if (n <= budget) { budget -= n; atomic.push(r) } else paged.push(r)
      })
      for (const r of paged) {
        try {
          await scanKey(client, r, now)
        } catch (err) {
          noteWrongType(r, err as Error)
        }
      }
      // The EXEC that ends the watch: it runs only if no key changed since WATCH.
      const multi = client.multi()
      for (const r of atomic) {
        // Already-expired members are left for the CLI to prune; we just do not read them.
        if (r.kind === 'expiring') multi.zrangebyscore(r.key, `(${now}`, '+inf', 'WITHSCORES')
        else multi.smembers(r.key)
      }
      const replies = await multi.exec()
      if (replies === null) return undefined
      atomic.forEach((r, i) => {
        const [err, value] = replies[i] ?? [new Error('no reply'), null]
        if (err !== null) return noteWrongType(r, err)
        takeMembers(r, Array.isArray(value) ? value : [], now)
      })
      return reads
    } catch (err) {
      // EXEC was not reached: drop the watch so it cannot abort a later read.
      await client.unwatch().catch(() => {})
      throw err
    }
  }

  private async toEntries (client: Redis, reads: KeyRead[]): Promise<{ raw: RawRead, live: Map<string, LiveEntries>, errors: EntryError[], counts: RedisSourceState['entries'] }> {
    const raw: RawRead = []
    const live = new Map<string, LiveEntries>()
    const errors: EntryError[] = []
    const counts = { allow: 0, deny: 0, expiring: 0 }
    for (const r of reads) {
      let entries = live.get(r.policy)
      if (entries === undefined) {
        entries = { allow: [], deny: [] }
        live.set(r.policy, entries)
      }
      if (r.wrongType === true) {
        raw.push(`!${r.key}`)
        // Reported like an invalid entry: logged with its key and counted; the rest loads.
        let type = 'unknown'
        try { type = await client.type(r.key) } catch { /* the report is still useful without it */ }
        const expected = r.kind === 'expiring' ? 'zset' : 'set'
        errors.push({ where: r.key, value: `(${type})`, message: `WRONGTYPE: the key holds a ${type}, corsgate expects a ${expected}; the key is ignored` })
        continue
      }
      raw.push(r.members ?? [])
      for (const e of r.entries ?? []) (r.kind === 'deny' ? entries.deny : entries.allow).push(e)
      counts[r.kind] += r.entries?.length ?? 0
    }
    return { raw, live, errors, counts }
  }

  private loadFailed (err: Error): void {
    this.log.warn({ redis: this.target, err: err.message }, 'redis reload failed; keeping the last good whitelist')
    this.markStale({ lastError: err.message })
    this.emit('loadError', err)
  }

  private markStale (patch: Partial<RedisSourceState>): void {
    this.update({ ...patch, stale: true, staleSince: this.st.stale ? this.st.staleSince : Date.now() })
  }

  private update (patch: Partial<RedisSourceState>): void {
    Object.assign(this.st, patch)
    this.emit('state', this.st)
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
    this.expiryTimer = setTimeout(() => this.requestReload('expiry'), delay)
    this.expiryTimer.unref()
  }

  /** Drops expired entries from the live view without Redis (used while Redis is away). */
  private async pruneExpiredLocally (): Promise<void> {
    const current = this.store.liveEntries
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
      const loaded = this.store.loaded
      const next = await buildSnapshotInSlices({ config: loaded.config, envOrigins: loaded.envOrigins, live, version: this.store.snapshot.version + 1 }, errors, { cache: this.patterns })
      // Stopped, or the config was reloaded meanwhile (expired entries stop matching anyway).
      if (this.stopped || this.store.loaded !== loaded) return
      // Same entries as before minus the expired ones: their errors were reported already.
      this.store.swap(next, live, SOURCE, [])
      this.lastRead = undefined
      this.log.info({ expired: dropped }, 'expired Redis origins dropped')
    }
    this.scheduleExpiry(live)
  }
}

/** Keys holding at most this many members in all are read in one MULTI. */
const ATOMIC_READ_BUDGET = 5000
/** Reads in a row that may be aborted by edits before a reload counts as failed. */
const READ_ATTEMPTS = 3
/** SSCAN/ZSCAN `COUNT` for larger keys: a page decodes in well under a millisecond. */
const SCAN_PAGE = 1000

/** One policy key in a read: what it held (`members`, `entries`), or that it had the wrong type. */
interface KeyRead {
  policy: string
  key: string
  kind: 'allow' | 'deny' | 'expiring'
  /** What was read, in reply order (expiring keys: member and score alternate), for change detection. */
  members?: string[]
  entries?: RawEntry[]
  wrongType?: boolean
}

function noteWrongType (r: KeyRead, err: Error): void {
  if (!/^WRONGTYPE/.test(err.message)) throw err
  r.wrongType = true
}

/** Adds one reply (SMEMBERS, a ZRANGEBYSCORE WITHSCORES, or one scan page) to `r`. */
function takeMembers (r: KeyRead, reply: unknown[], now: number): void {
  const members = r.members ?? (r.members = [])
  const entries = r.entries ?? (r.entries = [])
  if (r.kind === 'expiring') {
    for (const [value, expiresAt] of zsetPairs(reply)) {
      // Already-expired members are left for the CLI to prune; we just do not read them.
      if (expiresAt <= now) continue
      members.push(value, String(expiresAt))
      entries.push({ value, source: 'redis-expiring', where: r.key, expiresAt })
    }
    return
  }
  for (const value of reply as string[]) {
    members.push(value)
    entries.push({ value, source: 'redis', where: r.key })
  }
}

/** Reads a large key page by page; a member returned twice (SCAN may do that) counts once. */
async function scanKey (client: Redis, r: KeyRead, now: number): Promise<void> {
  const seen = new Set<string>()
  let cursor = '0'
  do {
    const [next, page] = r.kind === 'expiring'
      ? await client.zscan(r.key, cursor, 'COUNT', SCAN_PAGE)
      : await client.sscan(r.key, cursor, 'COUNT', SCAN_PAGE)
    const fresh: string[] = []
    const step = r.kind === 'expiring' ? 2 : 1
    for (let i = 0; i + step - 1 < page.length; i += step) {
      const member = page[i]!
      if (seen.has(member)) continue
      seen.add(member)
      for (let j = 0; j < step; j++) fresh.push(page[i + j]!)
    }
    takeMembers(r, fresh, now)
    cursor = next
  } while (cursor !== '0')
  r.members ??= []
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

/** `CONFIG GET` answers `[name, value]` (RESP2) or `{ name: value }` (RESP3 maps). */
function configValue (reply: unknown): string {
  if (Array.isArray(reply)) return String(reply[1] ?? '')
  if (reply !== null && typeof reply === 'object') return String(Object.values(reply)[0] ?? '')
  return ''
}

/** Do these `notify-keyspace-events` flags publish keyspace events for SET, ZSET and DEL? */
export function coversPolicyKeys (flags: string): boolean {
  if (!flags.includes('K')) return false
  return flags.includes('A') || (flags.includes('g') && flags.includes('s') && flags.includes('z'))
}

function mergeFlags (current: string, wanted: string): string {
  let out = current
  for (const c of wanted) if (!out.includes(c)) out += c
  return out
}

/** `ZRANGEBYSCORE … WITHSCORES`: flat `[m, s, m, s]` (RESP2) or pairs `[[m, s]]` (RESP3). */
function zsetPairs (reply: unknown[]): Array<[string, number]> {
  const out: Array<[string, number]> = []
  if (reply.length > 0 && Array.isArray(reply[0])) {
    for (const pair of reply as unknown[][]) out.push([String(pair[0]), Number(pair[1])])
  } else {
    for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), Number(reply[i + 1])])
  }
  return out
}

function sameRead (a: RawRead, b: RawRead): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i]
    const y = b[i]
    if (typeof x === 'string' || typeof y === 'string') {
      if (x !== y) return false
      continue
    }
    if (x === undefined || y === undefined || x.length !== y.length) return false
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return false
  }
  return true
}
