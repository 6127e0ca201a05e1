// The Redis a command reads: `--redis URL` over the config file's `redis:` section (and
// CORSGATE_REDIS_URL, applied when the file was loaded), checked like the config is.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { configSchema, type RedisConfig } from '../config/schema.js'
import type { LoadedConfig } from '../config/load.js'

export class CommandInputError extends Error {}

type OptionsConfig = NonNullable<ParseArgsConfig['options']>

/** The options every Redis command takes: `--redis URL` and `--config FILE`. */
const REDIS_COMMAND_OPTIONS = {
  redis: { type: 'string' },
  config: { type: 'string', short: 'c' }
} as const satisfies OptionsConfig

type CommandArgs<T extends OptionsConfig> = ReturnType<typeof parseArgs<{ args: string[], options: typeof REDIS_COMMAND_OPTIONS & T, allowPositionals: true, strict: true }>>

/** A Redis command's arguments: its own `options` and the shared ones, positionals allowed, unknown options refused. */
export function parseCommandArgs<T extends OptionsConfig> (args: string[], options: T): CommandArgs<T> {
  return parseArgs({ args, options: { ...REDIS_COMMAND_OPTIONS, ...options }, allowPositionals: true, strict: true })
}

/**
 * Checked before the config schema sees it: a bad --redis is bad input (exit 2, one line,
 * never a ZodError stack), and the URL itself is not echoed (it may hold a password).
 */
export function checkRedisFlag (flag: string | undefined): void {
  if (flag !== undefined && !/^rediss?:\/\//.test(flag)) throw new CommandInputError('--redis must be a redis:// or rediss:// URL')
}

export function commandRedisConfig (loaded: LoadedConfig, flag: string | undefined, what: string): RedisConfig {
  checkRedisFlag(flag)
  const checked = configSchema.shape.redis.unwrap().safeParse({ ...loaded.config.redis, ...(flag === undefined ? {} : { url: flag }) })
  if (!checked.success) throw new CommandInputError(`invalid Redis settings: ${checked.error.issues.map((i) => `redis${i.path.map((p) => `.${String(p)}`).join('')}: ${i.message}`).join('; ')}`)
  const redis = checked.data
  if (redis.url === undefined && redis.sentinels === undefined) throw new CommandInputError(`no Redis to ${what}: pass --redis URL, set CORSGATE_REDIS_URL, or set redis.url in ${loaded.file}`)
  return redis
}
