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

/** A command-line connection whose failures name the connection error, not the command's. */
export class CommandLineConnection {
  protected readonly client: Redis
  private connectionError: Error | undefined

  constructor (connection: RedisConnectionSettings) {
    this.client = commandLineRedis(connection)
    this.client.on('error', (err: Error) => { this.connectionError = err })
  }

  async connect (): Promise<void> {
    await this.explained(async () => await this.client.connect())
  }

  close (): void {
    this.client.disconnect()
  }

  // The connection error says more ("ECONNREFUSED") than the rejected command ("Connection is closed").
  protected async explained<T> (operation: () => Promise<T>): Promise<T> {
    try {
      return await operation()
    } catch (err) {
      throw this.connectionError ?? err
    }
  }
}
