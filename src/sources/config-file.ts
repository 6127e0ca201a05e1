// `ConfigFileSource`: the config file reloaded without a restart, on SIGHUP and when the file
// changes. The file's folder is watched, not the file: Kubernetes updates a mounted ConfigMap
// by swapping a `..data` symlink beside it, and editors replace a file by renaming another
// over it; either way the folder sees the event, a watch on the old file would not.
//
// A reload is validated exactly as at start (src/config/load.ts, the files it names
// included). A bad file is logged with every problem and the running config is kept. A good
// one has its policies compiled to the side and swapped in whole (PolicyStore), as a Redis
// reload is: requests in flight finish under the policies they started with. Every other
// setting (server, admin, log, redis, websocket, routes) is read once at start: a change to
// one is logged as needing a restart, and the running value stays.
import { EventEmitter } from 'node:events'
import { watch, readFileSync, type FSWatcher } from 'node:fs'
import { basename, dirname } from 'node:path'
import type { Logger } from 'pino'
import { ConfigError, loadConfig, type LoadedConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import type { PolicyStore, ReloadRecord } from './policy-store.js'

export const SOURCE = 'file'

/** Events in the folder within this window are one change (an editor or a ConfigMap swap writes several). */
const SETTLE_MS = 100

export type ConfigReloadOutcome =
  | { result: 'ok', record: ReloadRecord, needsRestart: string[] }
  | { result: 'unchanged', needsRestart: string[] }
  | { result: 'error', problems: string[] }

export interface ConfigFileSourceEvents {
  reloaded: [outcome: ConfigReloadOutcome]
}

export interface ConfigFileSourceOptions {
  store: PolicyStore
  logger: Logger
  env?: Record<string, string | undefined>
  /** Reload on SIGHUP (default true). A cluster worker gets the primary's relay instead. */
  signal?: boolean
}

export class ConfigFileSource extends EventEmitter<ConfigFileSourceEvents> {
  readonly file: string
  private readonly store: PolicyStore
  private readonly log: Logger
  private readonly env: Record<string, string | undefined>
  private readonly signal: boolean
  /** What the settings read only at start were, to tell which changes need a restart. */
  private readonly started: Config
  private lastText: string | undefined
  private watcher: FSWatcher | undefined
  private settleTimer: NodeJS.Timeout | undefined
  private readonly onSignal = (): void => { this.reload('SIGHUP') }

  constructor ({ store, logger, env = process.env, signal = true }: ConfigFileSourceOptions) {
    super()
    this.store = store
    this.file = store.loaded.file
    this.log = logger.child({ source: SOURCE })
    this.env = env
    this.signal = signal
    this.started = store.loaded.config
    this.lastText = readText(this.file)
  }

  start (): void {
    if (this.signal) process.on('SIGHUP', this.onSignal)
    try {
      const name = basename(this.file)
      this.watcher = watch(dirname(this.file), { persistent: false }, (_event, changed) => {
        // Our file, or anything else in its folder (a ConfigMap's `..data` swap): settle, then
        // compare the text, so a touch or an unrelated file reloads nothing.
        if (changed !== null && changed !== name && !changed.startsWith('..')) return
        clearTimeout(this.settleTimer)
        this.settleTimer = setTimeout(() => { this.reload('file changed', true) }, SETTLE_MS)
      })
      this.watcher.on('error', (err) => this.log.warn({ file: this.file, err: err.message }, 'config file watch failed; SIGHUP still reloads'))
    } catch (err) {
      this.log.warn({ file: this.file, err: (err as Error).message }, 'cannot watch the config file\'s folder; SIGHUP still reloads')
    }
    this.log.debug({ file: this.file }, 'watching the config file')
  }

  stop (): void {
    if (this.signal) process.off('SIGHUP', this.onSignal)
    clearTimeout(this.settleTimer)
    this.watcher?.close()
    this.watcher = undefined
  }

  /**
   * Reads, validates and applies the file (synchronously: two reloads never interleave).
   * `onlyIfChanged`: nothing happens when the text is what was last read.
   */
  reload (reason: string, onlyIfChanged = false): ConfigReloadOutcome {
    try {
      return this.apply(reason, onlyIfChanged)
    } catch (err) {
      // Never let a reload take the gateway down: the running config stays.
      return this.refuse(reason, [`unexpected error: ${(err as Error).message}`])
    }
  }

  private apply (reason: string, onlyIfChanged: boolean): ConfigReloadOutcome {
    const text = readText(this.file)
    if (onlyIfChanged && text === this.lastText) return { result: 'unchanged', needsRestart: [] }
    this.lastText = text
    let next: LoadedConfig
    try {
      next = loadConfig(this.file, this.env)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return this.refuse(reason, err.problems)
    }
    const running = this.store.loaded
    // Routes are read only at start: each must still find its policy in the new file.
    const missing = running.config.routes.flatMap((route, i) => route.policy in next.config.policies
      ? []
      : [`routes[${i}].policy: the running route ${route.host ?? ''}${route.path} uses policy "${route.policy}", which the new file no longer defines (a change of routes needs a restart)`])
    if (missing.length > 0) return this.refuse(reason, missing)

    const needsRestart = changedSettings(this.started, next.config)
    for (const warning of next.warnings) this.log.warn({ file: this.file }, warning)
    if (needsRestart.length > 0) this.log.warn({ file: this.file, settings: needsRestart }, `config reloaded, but these settings need a restart to take effect: ${needsRestart.join(', ')}`)
    const same = JSON.stringify(running.config.policies) === JSON.stringify(next.config.policies) && JSON.stringify(running.envOrigins) === JSON.stringify(next.envOrigins)
    if (same) {
      this.log.info({ file: this.file, reason }, 'config reloaded: policies unchanged')
      const outcome: ConfigReloadOutcome = { result: 'unchanged', needsRestart }
      this.emit('reloaded', outcome)
      return outcome
    }
    // Only the policies change; every other setting keeps its running value.
    const effective: LoadedConfig = { ...next, config: { ...running.config, policies: next.config.policies } }
    const record = this.store.replaceConfig(effective, SOURCE)
    this.log.info({ file: this.file, reason, version: this.store.snapshot.version, policies: Object.keys(next.config.policies) }, 'config reloaded: policies swapped in')
    const outcome: ConfigReloadOutcome = { result: 'ok', record, needsRestart }
    this.emit('reloaded', outcome)
    return outcome
  }

  private refuse (reason: string, problems: string[]): ConfigReloadOutcome {
    this.log.error({ file: this.file, reason, problems }, `config reload failed; keeping the running config:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    const outcome: ConfigReloadOutcome = { result: 'error', problems }
    this.emit('reloaded', outcome)
    return outcome
  }
}

function readText (file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

/** The settings read only at start: every top-level section but `policies`. */
export const RESTART_SECTIONS = ['server', 'admin', 'log', 'redis', 'websocket', 'routes'] as const

/** Which of the settings read only at start differ (`server.port`, `routes`, …). */
export function changedSettings (before: Config, after: Config): string[] {
  const out: string[] = []
  for (const section of RESTART_SECTIONS) {
    const a = before[section] as unknown
    const b = after[section] as unknown
    if (JSON.stringify(a) === JSON.stringify(b)) continue
    if (section === 'routes' || !isObject(a) || !isObject(b)) {
      out.push(section)
      continue
    }
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) out.push(`${section}.${key}`)
    }
  }
  return out
}

function isObject (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
