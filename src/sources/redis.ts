// `RedisPolicySource`: live whitelists from Redis (SPEC.md "Redis: live whitelists"). This
// file wires the parts, each in its own file:
//  - redis-connection.ts: the `redis:` config as ioredis options (URL, password, TLS, Sentinel),
//  - redis-subscriber.ts: the reload channel `{prefix}reload` and keyspace notifications on
//    `{prefix}policy:*`, on a second connection,
//  - redis-keyspace.ts: whether the server sends keyspace notifications (detected, never required),
//  - redis-reload.ts: the single-flight loop every change request goes to, keeping the last
//    good snapshot on error,
//  - redis-read.ts: the watched read of every policy's keys,
//  - redis-state.ts: what `/readyz` and metrics say about the source.
// A poll every `pollIntervalMs` is the safety net that always runs.
//
// Redis is never on the request path: requests only ever read the store's current snapshot.
// When Redis is down, slow or failing, the last good snapshot stays in force and the state
// says stale since when.
import { EventEmitter } from 'node:events'
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import type { RedisConfig } from '../config/schema.js'
import type { PolicyStore, ReloadRecord } from './policy-store.js'
import { reconnectBackoff, redisConnectionSettings } from './redis-connection.js'
import { KeyspaceDetection } from './redis-keyspace.js'
import { keyspacePattern, reloadChannel } from './redis-keys.js'
import { readPolicies } from './redis-read.js'
import { RedisReloadLoop } from './redis-reload.js'
import { RedisSourceStatus, type RedisSourceState } from './redis-state.js'
import { connectSubscriber } from './redis-subscriber.js'

export type { KeyspaceEvents, RedisSourceState } from './redis-state.js'

export const SOURCE = 'redis'

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

export class RedisPolicySource extends EventEmitter<RedisPolicySourceEvents> {
  readonly target: string
  private readonly redis: RedisConfig
  private readonly store: PolicyStore
  private readonly log: Logger
  private readonly prefix: string
  private readonly channel: string
  private readonly pattern: string
  private readonly options: RedisOptions
  private readonly status: RedisSourceStatus
  private readonly keyspace: KeyspaceDetection
  private readonly loop: RedisReloadLoop
  private client: Redis | undefined
  private subscriber: Redis | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private stopped = false
  private outageLogged = false

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
    this.status = new RedisSourceStatus((state) => this.emit('state', state))
    this.keyspace = new KeyspaceDetection({
      enable: redis.enableKeyspaceEvents,
      log: this.log,
      found: (keyspaceEvents) => this.status.update({ keyspaceEvents })
    })
    this.loop = new RedisReloadLoop({
      source: SOURCE,
      target: this.target,
      store,
      log: this.log,
      status: this.status,
      coalesceMs,
      client: () => this.client,
      read: async (client) => await readPolicies(client, { prefix: this.prefix, policies: () => this.policyNames, log: this.log }),
      loaded: (record) => this.emit('loaded', record),
      loadError: (err) => this.emit('loadError', err)
    })
  }

  /** The policies whose keys are read: those of the store's current config (a reload may change them). */
  private get policyNames (): string[] {
    return Object.keys(this.store.loaded.config.policies)
  }

  get state (): Readonly<RedisSourceState> {
    return this.status.current
  }

  /** Connects and starts watching. Returns at once: the first load happens in the background. */
  start (): void {
    this.log.info({ redis: this.target, keyPrefix: this.prefix, pollIntervalMs: this.redis.pollIntervalMs }, 'redis source starting')
    this.client = this.connectCommandClient()
    this.subscriber = connectSubscriber({
      options: this.options,
      prefix: this.prefix,
      channel: this.channel,
      pattern: this.pattern,
      log: this.log,
      isPolicy: (name) => this.policyNames.includes(name),
      requestReload: (reason) => this.requestReload(reason),
      subscribed: (subscribed) => this.status.update({ subscribed }),
      error: (err) => this.connectionError(err)
    })
    this.pollTimer = setInterval(() => this.poll(), this.redis.pollIntervalMs)
    this.pollTimer.unref()
  }

  async stop (): Promise<void> {
    this.stopped = true
    clearInterval(this.pollTimer)
    const reloaded = this.loop.stop()
    this.client?.disconnect()
    this.subscriber?.disconnect()
    await reloaded
  }

  /** Asks for a full resync soon; requests arriving meanwhile are merged into one. */
  requestReload (reason: string): void {
    this.loop.request(reason)
  }

  private connectCommandClient (): Redis {
    const client = new Redis({ ...this.options, connectionName: 'corsgate' })
    client.on('ready', () => {
      this.outageLogged = false
      this.log.info({ redis: this.target }, 'redis connected')
      this.status.update({ connected: true })
      void this.keyspace.detect(client).finally(() => this.requestReload('connect'))
    })
    client.on('close', () => {
      if (this.stopped || !this.status.current.connected) return
      this.log.warn({ redis: this.target, lastError: this.status.current.lastError }, 'redis connection lost; serving the last good whitelist')
      this.status.markStale({ connected: false })
    })
    client.on('error', (err: Error) => this.connectionError(err))
    return client
  }

  private connectionError (err: Error): void {
    if (this.stopped) return
    // One warning per outage; the retries that follow are debug noise.
    if (!this.outageLogged) {
      this.outageLogged = true
      this.log.warn({ redis: this.target, err: err.message }, 'redis error; retrying with backoff')
    } else {
      this.log.debug({ redis: this.target, err: err.message }, 'redis error')
    }
    this.status.update({ lastError: err.message })
  }

  /** The poll: read the keyspace setting again (cheap), then resync. */
  private poll (): void {
    const client = this.client
    if (client !== undefined && client.status === 'ready' && !this.stopped) void this.keyspace.detect(client).catch(() => {})
    this.requestReload('poll')
  }
}
