// The pub/sub connection: the reload channel `{prefix}reload` (SUBSCRIBE) and keyspace
// notifications on `{prefix}policy:*` (PSUBSCRIBE). Both only ask for a reload; what an
// event says is never trusted as data, the reload reads every key again.
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import { policyOfKey } from './redis-keys.js'

export interface SubscriberOptions {
  options: RedisOptions
  prefix: string
  channel: string
  pattern: string
  log: Logger
  /** Is `name` a policy of the current config? */
  isPolicy: (name: string) => boolean
  requestReload: (reason: string) => void
  subscribed: (up: boolean) => void
  error: (err: Error) => void
}

export function connectSubscriber ({ options, prefix, channel, pattern, log, isPolicy, requestReload, subscribed, error }: SubscriberOptions): Redis {
  const unknownPolicies = new Set<string>()
  const ignoreUnknown = (name: string, via: string): void => {
    if (unknownPolicies.has(name)) return
    unknownPolicies.add(name)
    log.debug({ policy: name, via }, 'ignoring Redis keys of a policy that is not in the config')
  }
  let up = false
  const sub = new Redis({ ...options, connectionName: 'corsgate-sub' })
  sub.on('ready', () => {
    void (async () => {
      try {
        await sub.subscribe(channel)
      } catch (err) {
        error(err as Error)
        return
      }
      // Keyspace events are a bonus: an ACL that refuses the pattern must not cost us the channel.
      try {
        await sub.psubscribe(pattern)
      } catch (err) {
        log.info({ pattern, err: (err as Error).message }, 'PSUBSCRIBE to keyspace events refused; the reload channel and polling still apply')
      }
      log.debug({ channel, pattern }, 'redis subscribed')
      up = true
      subscribed(true)
      // Anything published while we were not subscribed is lost: resync.
      requestReload('subscribed')
    })()
  })
  sub.on('close', () => {
    if (!up) return
    up = false
    subscribed(false)
  })
  sub.on('error', error)
  sub.on('message', (from: string, message: string) => {
    if (from !== channel) return
    const name = message.trim()
    if (name === '*' || isPolicy(name)) requestReload('channel')
    else ignoreUnknown(name, 'reload message')
  })
  sub.on('pmessage', (_pattern: string, from: string) => {
    const key = from.slice(from.indexOf(':') + 1)
    const name = policyOfKey(prefix, key)
    if (name === undefined) return
    if (isPolicy(name)) requestReload('keyspace')
    else ignoreUnknown(name, 'keyspace event')
  })
  return sub
}
