// Reads the observed counts of one policy from Redis: the hour buckets that overlap the
// window, summed (every replica has already added into the same buckets).
import type { Redis } from 'ioredis'
import { CommandLineConnection } from '../sources/command-line-client.js'
import type { RedisConnectionSettings } from '../sources/redis-connection.js'
import { observedKeysSince } from './observed-keys.js'
import { addBucket, type ObservedCounts } from './observed-report.js'

export async function readObservedCounts (client: Redis, prefix: string, policy: string, sinceMs: number, now: number): Promise<ObservedCounts> {
  const keys = observedKeysSince(prefix, policy, sinceMs, now)
  const pipeline = client.pipeline()
  for (const key of keys) pipeline.hgetall(key)
  const replies = await pipeline.exec()
  if (replies === null) throw new Error('the pipeline was aborted')
  const counts: ObservedCounts = new Map()
  for (const [err, hash] of replies) {
    if (err !== null) throw err
    addBucket(counts, hash as Record<string, string>)
  }
  return counts
}

/** A command-line reader: fails fast and says so, never retries in the background. */
export class RedisObservedReader extends CommandLineConnection {
  constructor (connection: RedisConnectionSettings, private readonly prefix: string) {
    super(connection)
  }

  async counts (policy: string, sinceMs: number, now = Date.now()): Promise<ObservedCounts> {
    return await this.explained(async () => await readObservedCounts(this.client, this.prefix, policy, sinceMs, now))
  }
}
