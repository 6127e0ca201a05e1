// Moves this replica's observed counts to Redis every `observe.flushIntervalMs`, off the
// request path: one MULTI per few hundred rows, pipelined (HINCRBY for counts, HSET/HSETNX for
// last and first seen and the routes, PEXPIRE for the retention), into the current hour's
// bucket (observed-keys.ts). A row's flushed part only grows once Redis has answered EXEC,
// so while Redis is down or a flush fails, counts wait in the table and go with the next
// flush that succeeds (bounded like the table itself).
import { EventEmitter } from 'node:events'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { RedisConfig } from '../config/schema.js'
import { reconnectBackoff, redisConnectionSettings } from '../sources/redis-connection.js'
import { readObservedCounts } from './observed-reader.js'
import { addLocalRows, type ObservedCounts } from './observed-report.js'
import { field, HOUR_MS, observedKey } from './observed-keys.js'
import { OUTCOMES, REASONS, SLOTS, type ObservedRow, type OriginObserver } from './origin-table.js'

/** Rows per MULTI: a flush never holds Redis for long. */
const ROWS_PER_TRANSACTION = 500

export interface FlushResult {
  /** Rows whose counts reached Redis. */
  rows: number
  /** Requests whose counts reached Redis. */
  requests: number
}

export interface ObservedFlusherEvents {
  flushed: [result: FlushResult]
  flushError: [err: Error]
}

export interface ObservedFlusherOptions {
  observer: OriginObserver
  flushIntervalMs: number
  logger: Logger
  redis: RedisConfig
  env?: Record<string, string | undefined>
}

export class ObservedFlusher extends EventEmitter<ObservedFlusherEvents> {
  readonly target: string
  private readonly observer: OriginObserver
  private readonly intervalMs: number
  private readonly log: Logger
  private readonly prefix: string
  private readonly redisConfig: RedisConfig
  private readonly env: Record<string, string | undefined>
  private client: Redis | undefined
  private timer: NodeJS.Timeout | undefined
  private running: Promise<FlushResult | undefined> | undefined
  private failing = false

  constructor ({ observer, flushIntervalMs, logger, redis, env = process.env }: ObservedFlusherOptions) {
    super()
    this.observer = observer
    this.intervalMs = flushIntervalMs
    this.log = logger.child({ component: 'observe' })
    this.redisConfig = redis
    this.env = env
    this.prefix = redis.keyPrefix
    // Built here so a bad password file fails at start like the policy source does.
    this.target = redisConnectionSettings(redis, env).target
  }

  get connected (): boolean {
    return this.client?.status === 'ready'
  }

  start (): void {
    {
      const settings = redisConnectionSettings(this.redisConfig, this.env)
      const client = new Redis({
        ...settings.options,
        connectionName: 'corsgate-observe',
        retryStrategy: reconnectBackoff(this.redisConfig.reconnectMaxDelayMs),
        // Nothing queues while Redis is away: the counts themselves wait in the table.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        autoResendUnfulfilledCommands: false
      })
      // The policy source logs the connection's ups and downs; here only flush results.
      client.on('error', () => {})
      client.on('ready', () => { void this.flush() })
      this.client = client
    }
    this.timer = setInterval(() => { void this.flush() }, this.intervalMs)
    this.timer.unref()
  }

  /** One flush now (single-flight: a call during a flush waits for it). Never throws. */
  async flush (): Promise<FlushResult | undefined> {
    this.running ??= this.flushOnce().finally(() => { this.running = undefined })
    return await this.running
  }

  /** Stops the timer, tries one last flush, closes the connection. */
  async stop (): Promise<void> {
    clearInterval(this.timer)
    await this.running
    if (this.connected) await this.flush()
    this.client?.disconnect()
    this.client = undefined
  }

  /**
   * Redis's sums over every replica for `policy` since `sinceMs` ago, plus what this replica
   * has not flushed yet. Throws when Redis cannot be read.
   */
  async read (policy: string, sinceMs: number): Promise<ObservedCounts> {
    if (this.client === undefined) throw new Error('observed origins are not flushed to Redis')
    const now = this.observer.now()
    const counts = await readObservedCounts(this.client, this.prefix, policy, sinceMs, now)
    const table = this.observer.table(policy)
    if (table !== undefined) addLocalRows(counts, table, true, now - sinceMs)
    return counts
  }

  private async flushOnce (): Promise<FlushResult | undefined> {
    const client = this.client
    if (client === undefined || client.status !== 'ready') return undefined
    const result: FlushResult = { rows: 0, requests: 0 }
    try {
      const now = this.observer.now()
      let batch: Array<{ row: ObservedRow, delta: Float64Array }> = []
      let multi = client.multi()
      const send = async (): Promise<void> => {
        if (batch.length === 0) return
        const replies = await multi.exec()
        if (replies === null) throw new Error('MULTI was aborted')
        for (const [err] of replies) if (err !== null) throw err
        // Only now is the sent part counted as flushed: a failure above leaves it to resend.
        for (const { row, delta } of batch) {
          for (let i = 0; i < SLOTS; i++) row.counts[SLOTS + i]! += delta[i]!
          result.rows++
          for (let i = 0; i < OUTCOMES.length; i++) result.requests += delta[i]!
        }
        batch = []
        multi = client.multi()
      }
      const ttlMs = this.observer.retentionMs + HOUR_MS
      for (const policy of [...this.observer.policies]) {
        const table = this.observer.table(policy)!
        const key = observedKey(this.prefix, policy, now)
        let touched = false
        for (const row of table.allRows()) {
          if (row.settled) continue
          const delta = new Float64Array(SLOTS)
          for (let i = 0; i < SLOTS; i++) {
            const n = row.counts[i]! - row.counts[SLOTS + i]!
            delta[i] = n
            if (n === 0) continue
            const name = i < OUTCOMES.length ? OUTCOMES[i]! : `r:${REASONS[i - OUTCOMES.length]!}`
            multi.hincrby(key, field(row.key, name), n)
          }
          multi.hsetnx(key, field(row.key, 'first'), row.firstSeen)
          multi.hset(key, field(row.key, 'last'), row.lastSeen)
          for (const route of row.routes) multi.hset(key, field(row.key, `route:${route}`), 1)
          batch.push({ row, delta })
          touched = true
          if (batch.length >= ROWS_PER_TRANSACTION) {
            multi.pexpire(key, ttlMs)
            await send()
            touched = false
          }
        }
        if (touched) {
          multi.pexpire(key, ttlMs)
          await send()
        }
      }
      this.observer.sweep(false)
      if (this.failing) this.log.info({ redis: this.target }, 'observed origins flushed again')
      this.failing = false
      this.emit('flushed', result)
      return result
    } catch (err) {
      if (!this.failing) this.log.warn({ redis: this.target, err: (err as Error).message }, 'observed origins flush failed; counts wait locally')
      this.failing = true
      this.emit('flushError', err as Error)
      return result
    }
  }
}
