#!/usr/bin/env node
// The `corsgate` command: argument parsing only; the work happens in the rooms it calls.
import cluster from 'node:cluster'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import closeWithGrace from 'close-with-grace'
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, type LoadedConfig } from './config/load.js'
import { createLogger } from './logger.js'
import { nodeSupportWarning } from './node-support.js'
import { collectStartupGarbage } from './startup-garbage.js'
import { RELOAD_MESSAGE, reportListening, SHUTDOWN_MESSAGE, superviseWorkers, workerConfig, workerIndex } from './workers.js'

const USAGE = `usage:
  corsgate [start] [--config FILE]
  corsgate check --config FILE --origin O [--method M] [--header H]... [--path P] [--host H] [--json]
  corsgate validate --config FILE [--skip-files]
  corsgate origins list|add|remove|deny|undeny --policy NAME [PATTERN...] [--ttl 7d] [--redis URL] [--config FILE] [--dry-run] [--allow-unknown-policy]
  corsgate origins export [--policy NAME]... [--output FILE] [--redis URL] [--config FILE]
  corsgate origins import FILE|- [--replace] [--dry-run] [--redis URL] [--config FILE] [--allow-unknown-policy]
  corsgate origins observed --policy NAME [--since 24h] [--outcome O] [--json] [--redis URL] [--config FILE]
  corsgate diff --config CANDIDATE [--live FILE] [--redis URL] [--since 24h] [--json]
  corsgate health [--config FILE] [--timeout MS]
  corsgate --version

The config file defaults to $CORSGATE_CONFIG, then ${DEFAULT_CONFIG_PATH}.`

/** Exit codes: 0 ok/allowed, 1 denied, 2 bad input or invalid config. */
export const EXIT = { ok: 0, denied: 1, usage: 2 } as const

class UsageError extends Error {}

function configPath (flag: string | undefined): string {
  const chosen = flag ?? process.env.CORSGATE_CONFIG
  if (chosen !== undefined && chosen !== '') return chosen
  if (existsSync(DEFAULT_CONFIG_PATH)) return DEFAULT_CONFIG_PATH
  // Installed as a package and run from elsewhere: the shipped default.
  return fileURLToPath(new URL(`../${DEFAULT_CONFIG_PATH}`, import.meta.url))
}

async function start (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true })
  const loaded = loadConfig(configPath(values.config))
  const logger = createLogger(loaded.config)
  const worker = workerIndex()
  if (worker === undefined) {
    const warning = nodeSupportWarning()
    if (warning !== undefined) logger.warn({ node: process.versions.node }, warning)
  }
  // `server.workers` > 1: this process only supervises; each worker runs the gateway (src/workers.ts).
  if (loaded.config.server.workers > 1 && cluster.isPrimary) {
    const { workers: count, host, port, shutdownGraceMs } = loaded.config.server
    await superviseWorkers({ count, host, port, shutdownGraceMs }, logger)
    return -1
  }
  // Loaded here, not at the top: a supervising primary and the other commands never serve.
  const { startGateway } = await import('./server.js')
  // The config file's policies reload on change and on SIGHUP (a worker gets the primary's relay).
  const running = worker === undefined
    ? await startGateway({ loaded, logger, watchConfig: true })
    : await startGateway({ loaded: workerConfig(loaded, worker), logger: logger.child({ worker }), watchConfig: { signal: false } })
  collectStartupGarbage()
  reportListening()
  // SIGHUP reloads the config file (src/sources/config-file.ts); it is not a shutdown.
  const grace = closeWithGrace({ delay: loaded.config.server.shutdownGraceMs, skip: ['SIGHUP'], logger: { error: (m: unknown) => logger.error(m) } }, async ({ signal, err }) => {
    if (err !== undefined) logger.error({ err }, 'fatal error, shutting down')
    else logger.info({ signal }, 'shutting down')
    await running.close()
  })
  // A cluster worker drains when the primary asks (it relays SIGTERM/SIGINT as a message).
  if (worker !== undefined) {
    process.on('message', (message) => {
      if (message === SHUTDOWN_MESSAGE) void grace.close()
      if (message === RELOAD_MESSAGE) running.configFile?.reload('SIGHUP')
    })
  }
  return -1 // keep running
}

async function check (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      origin: { type: 'string' },
      method: { type: 'string', default: 'GET' },
      header: { type: 'string', multiple: true, default: [] },
      path: { type: 'string', default: '/' },
      host: { type: 'string' },
      json: { type: 'boolean', default: false }
    },
    strict: true
  })
  if (values.origin === undefined) throw new UsageError('check needs --origin (use --origin "" to check a request without Origin)')
  // A config meant for another machine: the files it names need not exist here.
  const loaded = loadConfig(configPath(values.config), process.env, { files: false })
  const [{ PolicyStore }, { RouteTable }, { explain }] = await Promise.all([import('./sources/policy-store.js'), import('./gateway/route-table.js'), import('./gateway/explain.js')])
  const store = new PolicyStore(loaded)
  const routes = new RouteTable(loaded.config.routes)
  const result = explain({ config: loaded.config, store, routes }, {
    origin: values.origin === '' ? undefined : values.origin,
    method: values.method,
    headers: values.header.flatMap((h) => h.split(',')),
    path: values.path,
    host: values.host
  })
  if (values.json) {
    console.log(JSON.stringify(result, null, 2))
  } else {
    const verdict = result.allowed ? 'ALLOWED' : result.decision === 'would_deny' ? 'DENIED (report-only: served anyway)' : 'DENIED'
    console.log(`${verdict}: ${result.reason}${result.detail === null ? '' : ` (${result.reason === 'method_not_allowed' ? 'method' : 'header'} ${result.detail})`}${result.rule === null ? '' : ` (rule ${JSON.stringify(result.rule)} from ${result.ruleSource})`}`)
    console.log(`  ${result.kind} · policy ${result.policy} (${result.mode}) · route ${result.route ?? '(none)'}${result.upstream === null ? '' : ` → ${result.upstream}`}`)
    console.log(`  status ${result.status}`)
    for (const [name, value] of Object.entries(result.headers)) console.log(`  ${name}: ${value}`)
  }
  return result.allowed ? EXIT.ok : EXIT.denied
}

function validate (args: string[]): number {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, 'skip-files': { type: 'boolean', default: false } }, strict: true })
  // Checks what `start` checks, the files the config names included (unless --skip-files).
  const loaded: LoadedConfig = loadConfig(configPath(values.config), process.env, { files: !values['skip-files'] })
  for (const w of loaded.warnings) console.error(`warning: ${w}`)
  console.log(`${loaded.file}: valid (${Object.keys(loaded.config.policies).length} policies, ${loaded.config.routes.length} routes)`)
  return EXIT.ok
}

async function origins (args: string[]): Promise<number> {
  // Loaded lazily: only this command needs a Redis client at the CLI.
  const { runOriginsCommand } = await import('./cli/origins.js')
  return await runOriginsCommand(args, configPath)
}

async function health (args: string[]): Promise<number> {
  const { runHealthCommand } = await import('./cli/health.js')
  return await runHealthCommand(args, configPath)
}

async function diff (args: string[]): Promise<number> {
  const { runDiffCommand } = await import('./cli/diff.js')
  return await runDiffCommand(args)
}

function packageVersion (): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

export async function main (argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  try {
    switch (first) {
      case undefined: return await start([])
      case 'start': return await start(rest)
      case 'check': return await check(rest)
      case 'validate': return validate(rest)
      case 'origins': return await origins(rest)
      case 'health': return await health(rest)
      case 'diff': return await diff(rest)
      case 'help': case '--help': case '-h': console.log(USAGE); return EXIT.ok
      case 'version': case '--version': case '-v': console.log(packageVersion()); return EXIT.ok
      default:
        if (first.startsWith('-')) return await start(argv)
        throw new UsageError(`unknown command "${first}"`)
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message)
      return EXIT.usage
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true) {
      console.error(`corsgate: ${(err as Error).message}\n\n${USAGE}`)
      return EXIT.usage
    }
    throw err
  }
}

const code = await main(process.argv.slice(2))
if (code >= 0) process.exitCode = code
