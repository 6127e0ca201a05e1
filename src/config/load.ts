// Reading the configuration: YAML file → environment overlay → schema → pattern checks.
// Every problem is collected (not just the first) and named by its path in the file.
import { readFileSync } from 'node:fs'
import { parseDocument } from 'yaml'
import type { z } from 'zod'
import { compilePolicy, fileEntries, parseEntries, type EntryError } from '../policy/compile.js'
import { developmentOriginWarnings } from './development-origins.js'
import { referencedFileProblems } from './files.js'
import { humanIssue, valueAt } from './issues.js'
import { configSchema, type Config } from './schema.js'

export const DEFAULT_CONFIG_PATH = 'config/default.yaml'

/** Chromium caps `Access-Control-Max-Age` at 7200 s; Firefox at 86400 s. */
export const BROWSER_MAX_AGE_CAP = 7200

export class ConfigError extends Error {
  readonly code = 'CORSGATE_CONFIG_INVALID'
  constructor (readonly file: string, readonly problems: string[]) {
    super(`invalid configuration ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

export interface LoadedConfig {
  config: Config
  file: string
  /** Origins from `CORSGATE_ORIGINS`, added to the `default` policy (or replacing its file origins, `CORSGATE_ORIGINS_MODE=replace`). */
  envOrigins: string[]
  warnings: string[]
}

type Env = Record<string, string | undefined>

export interface LoadOptions {
  /**
   * Check that the files the config names (CA bundles, secret files) can be read, as `start`
   * needs them. Default true; off for `check`, and `validate --skip-files`, which judge a
   * config meant for another machine.
   */
  files?: boolean
}

/** Loads and validates a config file; throws `ConfigError` listing every problem. */
export function loadConfig (file: string, env: Env = process.env, options: LoadOptions = {}): LoadedConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as Error).message}`])
  }
  const loaded = parseConfig(text, file, env)
  if (options.files !== false) {
    const problems = referencedFileProblems(loaded.config)
    if (problems.length > 0) throw new ConfigError(file, problems)
  }
  return loaded
}

export function parseConfig (text: string, file: string, env: Env = {}): LoadedConfig {
  return validateConfig(parseYaml(text, file), file, env)
}

/** The document a config file holds, as plain data; throws `ConfigError` for bad YAML. */
export function parseYaml (text: string, file: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) throw new ConfigError(file, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`))
  return doc.toJS() ?? {}
}

/**
 * Validates a config document (what the YAML holds, as plain data): environment overlay,
 * schema, pattern checks. `schema` is the standalone gateway's unless told otherwise (the
 * Fastify plugin's has no upstreams to check). `raw` is not modified.
 */
export function validateConfig (document: unknown, file: string, env: Env = {}, schema: z.ZodType<Config> = configSchema): LoadedConfig {
  // The environment overlay writes into the document: a caller's object stays as it was.
  const raw: unknown = document !== null && typeof document === 'object' ? structuredClone(document) : document
  const problems: string[] = []
  const fromEnv = new Map<string, string>()
  const envOrigins = applyEnv(raw, env, problems, fromEnv)

  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    throw new ConfigError(file, [
      ...problems,
      ...parsed.error.issues.map((issue) => describeIssue(issue, raw, fromEnv)),
      ...rawPatternProblems(raw),
      ...envOriginProblems(envOrigins)
    ])
  }
  const config = parsed.data
  if (envOrigins.length > 0 && !('default' in config.policies)) problems.push('CORSGATE_ORIGINS: there is no policy named "default" to add the origins to')

  const warnings: string[] = developmentOriginWarnings(config, env)
  const errors: EntryError[] = []
  for (const [name, policy] of Object.entries(config.policies)) {
    const raw = fileEntries(name, policy, name === 'default' ? envOrigins : [])
    compilePolicy({ name, config: policy, allow: parseEntries(raw.allow, errors), deny: parseEntries(raw.deny, errors) }, errors)
    if (policy.maxAge !== undefined && policy.maxAge > BROWSER_MAX_AGE_CAP) {
      warnings.push(`policies.${name}.maxAge: ${policy.maxAge} s is above what Chromium honours (${BROWSER_MAX_AGE_CAP} s); browsers will cache preflights for less`)
    }
  }
  problems.push(...errors.map((e) => `${e.where}: ${e.message}`))
  if (problems.length > 0) throw new ConfigError(file, problems)
  return { config, file, envOrigins, warnings }
}

// When the schema fails, the origin lists are still checked, so one run lists every error.
function rawPatternProblems (raw: unknown): string[] {
  const policies = (raw as { policies?: unknown } | null)?.policies
  if (policies === null || typeof policies !== 'object') return []
  const errors: EntryError[] = []
  for (const [name, policy] of Object.entries(policies as Record<string, unknown>)) {
    for (const key of ['origins', 'deny'] as const) {
      const list = (policy as Record<string, unknown> | null)?.[key]
      if (!Array.isArray(list)) continue
      const entries = list.flatMap((value: unknown, i) => typeof value === 'string' ? [{ value, source: 'file', where: `policies.${name}.${key}[${i}]` }] : [])
      parseEntries(entries, errors)
    }
  }
  return errors.map((e) => `${e.where}: ${e.message}`)
}

function envOriginProblems (origins: readonly string[]): string[] {
  const errors: EntryError[] = []
  parseEntries(origins.map((value, i) => ({ value, source: 'env', where: `CORSGATE_ORIGINS[${i}]` })), errors)
  return errors.map((e) => `${e.where}: ${e.message}`)
}

/** One line per schema issue, named by its path, or by the variable that set the value. */
function describeIssue (issue: z.core.$ZodIssue, raw: unknown, fromEnv: ReadonlyMap<string, string>): string {
  const path = formatPath(issue.path)
  const where = fromEnv.has(path) ? `${fromEnv.get(path)!} (${path})` : path === '' ? '(top level)' : path
  if (issue.code === 'unrecognized_keys') {
    return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`
  }
  if (issue.code === 'invalid_key') {
    // A record key (a policy name) that fails its own schema: keep that schema's message.
    return `${where}: invalid name: ${issue.issues.map((i) => i.message).join('; ')}`
  }
  return `${where}: ${humanIssue(issue, valueAt(raw, issue.path))}`
}

export function formatPath (path: readonly PropertyKey[]): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    else out += out === '' ? String(part) : `.${String(part)}`
  }
  return out
}

// The knobs a container needs (SPEC.md "Configuration"), applied to the raw document so the
// schema validates them like any other value.
function applyEnv (raw: unknown, env: Env, problems: string[], fromEnv: Map<string, string>): string[] {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return []
  const doc = raw as Record<string, unknown>
  const section = (key: string): Record<string, unknown> => {
    const value = doc[key]
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
    const fresh: Record<string, unknown> = {}
    doc[key] = fresh
    return fresh
  }
  const port = (name: string): number | undefined => {
    const value = env[name]
    if (value === undefined || value === '') return undefined
    if (!/^[0-9]{1,5}$/.test(value) || Number(value) > 65535) {
      problems.push(`${name}: "${value}" is not a port number`)
      return undefined
    }
    return Number(value)
  }
  const set = (name: string, sectionName: string, key: string, value: unknown): void => {
    section(sectionName)[key] = value
    fromEnv.set(`${sectionName}.${key}`, name)
  }
  if (env.CORSGATE_HOST) set('CORSGATE_HOST', 'server', 'host', env.CORSGATE_HOST)
  const serverPort = port('CORSGATE_PORT')
  if (serverPort !== undefined) set('CORSGATE_PORT', 'server', 'port', serverPort)
  if (env.CORSGATE_ADMIN_HOST) set('CORSGATE_ADMIN_HOST', 'admin', 'host', env.CORSGATE_ADMIN_HOST)
  const adminPort = port('CORSGATE_ADMIN_PORT')
  if (adminPort !== undefined) set('CORSGATE_ADMIN_PORT', 'admin', 'port', adminPort)
  if (env.CORSGATE_LOG_LEVEL) set('CORSGATE_LOG_LEVEL', 'log', 'level', env.CORSGATE_LOG_LEVEL)
  if (env.CORSGATE_REDIS_URL) set('CORSGATE_REDIS_URL', 'redis', 'url', env.CORSGATE_REDIS_URL)
  if (env.CORSGATE_UPSTREAM) {
    const routes = Array.isArray(doc.routes) ? doc.routes as Array<Record<string, unknown>> : []
    const index = routes.findIndex((r) => r !== null && typeof r === 'object' && r.path === '/' && r.host === undefined)
    if (index < 0) problems.push('CORSGATE_UPSTREAM: the config has no catch-all route (path "/" without host) to point at it')
    else {
      routes[index]!.upstream = env.CORSGATE_UPSTREAM
      fromEnv.set(`routes[${index}].upstream`, 'CORSGATE_UPSTREAM')
    }
  }
  const origins = (env.CORSGATE_ORIGINS ?? '').split(',').map((o) => o.trim()).filter((o) => o !== '')
  const mode = env.CORSGATE_ORIGINS_MODE ?? ''
  if (mode !== '' && mode !== 'add' && mode !== 'replace') problems.push(`CORSGATE_ORIGINS_MODE: must be "add" or "replace", got ${JSON.stringify(mode)}`)
  if (mode === 'replace') {
    // The file's allow list of the default policy is dropped; its deny list stays.
    if (origins.length === 0) problems.push('CORSGATE_ORIGINS_MODE=replace: CORSGATE_ORIGINS is empty, which would leave the default policy with no origin allowed; list the origins to allow')
    const policies = doc.policies
    const policy = policies !== null && typeof policies === 'object' ? (policies as Record<string, unknown>).default : undefined
    if (policy !== null && typeof policy === 'object' && !Array.isArray(policy)) (policy as Record<string, unknown>).origins = []
  }
  return origins
}
