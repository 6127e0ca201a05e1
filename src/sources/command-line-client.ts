// The Redis client of the command-line tools (`corsgate origins …`, `diff`): fails fast and
// says so, and never retries in the background, unlike the gateway's reconnecting source.
import { Redis } from 'ioredis'
import type { RedisConnectionSettings } from './redis-connection.js'

export function commandLineRedis (connection: RedisConnectionSettings): Redis {
  return new Redis({
    ...connection.options,
    lazyConnect: true,
    retryStrategy: () => null,
    sentinelRetryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectionName: 'corsgate-cli'
  })
}
