// The Redis a command reads: `--redis URL` over the config file's `redis:` section (and
// CORSGATE_REDIS_URL, applied when the file was loaded), checked like the config is.
import { configSchema, type RedisConfig } from '../config/schema.js'
import type { LoadedConfig } from '../config/load.js'

export class CommandInputError extends Error {}

export function commandRedisConfig (loaded: LoadedConfig, flag: string | undefined, what: string): RedisConfig {
  // A bad --redis is bad input, and the URL itself is not echoed (it may hold a password).
  if (flag !== undefined && !/^rediss?:\/\//.test(flag)) throw new CommandInputError('--redis must be a redis:// or rediss:// URL')
  const checked = configSchema.shape.redis.unwrap().safeParse({ ...loaded.config.redis, ...(flag === undefined ? {} : { url: flag }) })
  if (!checked.success) throw new CommandInputError(`invalid Redis settings: ${checked.error.issues.map((i) => `redis${i.path.map((p) => `.${String(p)}`).join('')}: ${i.message}`).join('; ')}`)
  const redis = checked.data
  if (redis.url === undefined && redis.sentinels === undefined) throw new CommandInputError(`no Redis to ${what}: pass --redis URL, set CORSGATE_REDIS_URL, or set redis.url in ${loaded.file}`)
  return redis
}
