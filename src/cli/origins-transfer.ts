// `corsgate origins export` and `import`: the Redis whitelists to a file and back, so a Redis
// without persistence can be refilled after a restart and the lists can be kept in git.
//   export [--policy NAME]... [--output FILE]   every policy with keys in Redis, or those named
//   import FILE|- [--replace] [--dry-run]       adds the file's entries (--replace: the named
//                                               policies' Redis lists become exactly the file)
// Every pattern is checked before anything is written (one bad entry → exit 2, nothing written);
// expiring entries already past their expiry are skipped and counted. Exit codes as the other
// `origins` subcommands: 0 ok, 2 bad input, 1 Redis error.
import { readFileSync, writeFileSync } from 'node:fs'
import { loadConfig } from '../config/load.js'
import { RedisOriginLists, type PolicyLists } from '../sources/origin-lists.js'
import { RedisConfigError, redisConnectionSettings } from '../sources/redis-connection.js'
import { formatOriginsFile, OriginsFileError, parseOriginsFile } from './origins-file.js'
import { unknownPolicyMessage, USAGE } from './origins-usage.js'
import { CommandInputError, commandRedisConfig, parseCommandArgs } from './redis-settings.js'

const EXIT = { ok: 0, redis: 1, usage: 2 } as const

export async function runTransferCommand (args: string[], configPath: (flag: string | undefined) => string): Promise<number> {
  let run: () => Promise<number>
  try {
    run = plan(args, configPath)
  } catch (err) {
    if (err instanceof CommandInputError || err instanceof RedisConfigError || err instanceof OriginsFileError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      const message = err instanceof OriginsFileError ? `nothing written; the file has problems:\n${err.problems.map((p) => `  - ${p}`).join('\n')}` : (err as Error).message
      console.error(`corsgate origins: ${message}\n${USAGE}`)
      return EXIT.usage
    }
    throw err
  }
  return await run()
}

function plan (args: string[], configPath: (flag: string | undefined) => string): () => Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    policy: { type: 'string', short: 'p', multiple: true, default: [] },
    output: { type: 'string', short: 'o' },
    replace: { type: 'boolean', default: false },
    'dry-run': { type: 'boolean', default: false },
    'allow-unknown-policy': { type: 'boolean', default: false }
  })
  const [sub, ...rest] = positionals
  const loaded = loadConfig(configPath(values.config))
  const redis = commandRedisConfig(loaded, values.redis, 'write to')
  const connection = redisConnectionSettings(redis)
  const lists = new RedisOriginLists(connection, redis.keyPrefix)
  const withRedis = async (work: () => Promise<void>): Promise<number> => {
    try {
      await lists.connect()
      await work()
      return EXIT.ok
    } catch (err) {
      console.error(`corsgate origins: Redis error (${connection.target}): ${(err as Error).message}`)
      return EXIT.redis
    } finally {
      lists.close()
    }
  }

  if (sub === 'export') {
    if (rest.length > 0) throw new CommandInputError('export takes no patterns (use --policy NAME to choose policies)')
    if (values.replace || values['dry-run']) throw new CommandInputError('--replace and --dry-run apply to import')
    return async () => await withRedis(async () => {
      const names = values.policy.length > 0 ? values.policy : await lists.policiesInRedis()
      const now = Date.now()
      const out = new Map<string, PolicyLists>()
      for (const name of names) out.set(name, await lists.read(name, now))
      const text = formatOriginsFile(out, `corsgate origins export · ${connection.target} · prefix "${redis.keyPrefix}" · ${new Date(now).toISOString()}\nRestore with: npx corsgate origins import FILE (add --replace to make Redis match the file exactly)`)
      if (values.output === undefined) process.stdout.write(text)
      else {
        writeFileSync(values.output, text)
        const count = [...out.values()].reduce((n, l) => n + l.origins.length + l.deny.length + l.expiring.length, 0)
        console.error(`exported ${count} entr${count === 1 ? 'y' : 'ies'} of ${out.size} polic${out.size === 1 ? 'y' : 'ies'} to ${values.output}`)
      }
    })
  }

  // import
  if (rest.length !== 1) throw new CommandInputError('import needs one FILE (or - for standard input)')
  if (values.policy.length > 0 || values.output !== undefined) throw new CommandInputError('--policy and --output apply to export')
  const file = rest[0]!
  let text: string
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8')
  } catch (err) {
    throw new CommandInputError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  const parsed = parseOriginsFile(text)
  const unknown = [...parsed.keys()].filter((name) => !(name in loaded.config.policies))
  if (unknown.length > 0 && !values['allow-unknown-policy']) throw new CommandInputError(unknownPolicyMessage(unknown[0]!, loaded))
  const now = Date.now()
  let expired = 0
  for (const l of parsed.values()) {
    const before = l.expiring.length
    l.expiring = l.expiring.filter((e) => e.expiresAt > now)
    expired += before - l.expiring.length
  }
  return async () => await withRedis(async () => {
    const count = [...parsed.values()].reduce((n, l) => n + l.origins.length + l.deny.length + l.expiring.length, 0)
    const what = `${count} entr${count === 1 ? 'y' : 'ies'} for ${[...parsed.keys()].join(', ') || 'no policy'}${expired > 0 ? `; ${expired} expired entr${expired === 1 ? 'y' : 'ies'} skipped` : ''}`
    if (values['dry-run']) {
      console.log(`dry run: would ${values.replace ? 'replace the Redis lists with' : 'add'} ${what}`)
      return
    }
    const { receivers } = await lists.write(parsed, values.replace)
    console.log(`${values.replace ? 'replaced the Redis lists with' : 'imported'} ${what}: reload published to ${receivers} subscriber${receivers === 1 ? '' : 's'}`)
  })
}
