// Observed origins as the process runs them: the table every request is counted in, the
// flush to Redis when Redis is configured, and the counts that `GET /observed` and
// `POST /diff` read (Redis's sums over every replica plus what this one has not flushed yet;
// this replica's own totals when there is no Redis or Redis cannot be read).
import type { Logger } from 'pino'
import { parseDuration } from '../config/duration.js'
import type { Config } from '../config/schema.js'
import { addLocalRows, type ObservedCounts } from './observed-report.js'
import { OriginObserver } from './origin-table.js'
// Type-only: the flusher (and ioredis) is loaded only when Redis is configured.
import type { ObservedFlusher } from './redis-flusher.js'

export type CountsSource = 'redis' | 'local'

export class ObservedOrigins {
  private sweepTimer: NodeJS.Timeout | undefined

  constructor (readonly observer: OriginObserver, readonly flusher: ObservedFlusher | undefined, private readonly intervalMs: number) {}

  start (): void {
    if (this.flusher !== undefined) {
      this.flusher.start()
      return
    }
    // Without Redis nothing flushes; origins not seen within the retention are forgotten.
    this.sweepTimer = setInterval(() => this.observer.sweep(true), this.intervalMs)
    this.sweepTimer.unref()
  }

  async stop (): Promise<void> {
    clearInterval(this.sweepTimer)
    await this.flusher?.stop()
    this.observer.close()
  }

  /** The counts of `policy` over the last `sinceMs`, and where they came from. */
  async counts (policy: string, sinceMs: number): Promise<{ counts: ObservedCounts, source: CountsSource }> {
    if (this.flusher?.connected === true) {
      try {
        return { counts: await this.flusher.read(policy, sinceMs), source: 'redis' }
      } catch {
        // Redis went away between the check and the read: this replica's view serves.
      }
    }
    const counts: ObservedCounts = new Map()
    const table = this.observer.table(policy)
    if (table !== undefined) addLocalRows(counts, table, false, this.observer.now() - sinceMs)
    return { counts, source: 'local' }
  }
}

/** Undefined when `observe.enabled` is off. */
export async function createObservedOrigins (config: Config, logger: Logger): Promise<ObservedOrigins | undefined> {
  const { observe, redis } = config
  if (!observe.enabled) return undefined
  const observer = new OriginObserver({ maxOrigins: observe.maxOrigins, retentionMs: parseDuration(observe.retention)! })
  let flusher: ObservedFlusher | undefined
  if (redis !== undefined && (redis.url !== undefined || redis.sentinels !== undefined)) {
    const { ObservedFlusher } = await import('./redis-flusher.js')
    flusher = new ObservedFlusher({ observer, flushIntervalMs: observe.flushIntervalMs, logger, redis })
  }
  return new ObservedOrigins(observer, flusher, observe.flushIntervalMs)
}
