// Turns one policy's configuration plus live entries into a `CompiledPolicy`: matchers built,
// method and header sets made, every response header string precomputed. Runs once per
// load or reload, never per request.
import type { PolicyConfig } from '../config/schema.js'
import { OriginMatcher, type EntrySource, type MatcherEntry } from './matcher.js'
import { OriginPatternError, parseOriginPattern } from './origin-pattern.js'

export type Mode = PolicyConfig['mode']

export interface CompiledPolicy {
  readonly name: string
  readonly config: PolicyConfig
  readonly mode: Mode
  readonly noOrigin: 'allow' | 'deny'
  readonly credentials: boolean
  readonly preflightStatus: number
  readonly privateNetwork: boolean
  readonly allow: OriginMatcher
  readonly deny: OriginMatcher
  /** `*` is allowed and credentials are off: `Access-Control-Allow-Origin: *`. */
  readonly allowAll: boolean
  /** The answer can differ by origin, so every response carries `Vary: Origin`. */
  readonly varyOrigin: boolean
  readonly methods: ReadonlySet<string>
  /** Lower-case header names, or `*` (echo what was requested). */
  readonly allowHeaders: ReadonlySet<string> | '*'
  /** Precomputed header values. */
  readonly headerValues: {
    readonly allowMethods: string
    /** Undefined when `allowHeaders` is `*`: the requested list is echoed. */
    readonly allowHeaders: string | undefined
    readonly maxAge: string | undefined
    readonly exposeHeaders: string | undefined
  }
  /** Earliest expiry among expiring entries, to re-check without a reload. */
  readonly nextExpiry: number | undefined
}

export interface EntryError {
  /** Where the entry came from, e.g. `policies.default.origins[2]` or a Redis key. */
  where: string
  value: string
  message: string
}

export interface RawEntry {
  value: string
  source: EntrySource
  where: string
  expiresAt?: number
}

/** Parses entries, returning the good ones and an error for each bad one; never throws. */
export function parseEntries (raw: Iterable<RawEntry>, errors: EntryError[]): MatcherEntry[] {
  const entries: MatcherEntry[] = []
  for (const r of raw) {
    try {
      const entry: MatcherEntry = { pattern: parseOriginPattern(r.value), source: r.source, where: r.where }
      if (r.expiresAt !== undefined) entry.expiresAt = r.expiresAt
      entries.push(entry)
    } catch (err) {
      if (!(err instanceof OriginPatternError)) throw err
      errors.push({ where: r.where, value: r.value, message: err.message })
    }
  }
  return entries
}

export interface PolicyInput {
  name: string
  config: PolicyConfig
  allow: MatcherEntry[]
  deny: MatcherEntry[]
}

/**
 * Compiles a policy. Entries that break a policy-level rule (`*` with credentials) are
 * dropped and reported in `errors`, so a bad live entry never takes the policy down.
 */
export function compilePolicy ({ name, config, allow, deny }: PolicyInput, errors: EntryError[]): CompiledPolicy {
  const keep = allowRule(name, config, errors)
  const allowMatcher = new OriginMatcher(config.credentials ? allow.filter(keep) : allow)
  const denyMatcher = new OriginMatcher(deny)
  return compilePolicyWith(name, config, allowMatcher, denyMatcher)
}

/**
 * The policy-level rule for allow entries, as a filter: false (and reported in `errors`) for
 * an entry the policy refuses, `*` with credentials. Shared by `compilePolicy` and the sliced
 * build, which adds entries to an `OriginMatcherBuilder` itself.
 */
export function allowRule (name: string, config: PolicyConfig, errors: EntryError[]): (e: MatcherEntry) => boolean {
  return (e) => {
    if (!config.credentials || e.pattern.kind !== 'any') return true
    errors.push({ where: e.where ?? `policies.${name}.origins (${e.source})`, value: '*', message: '"*" cannot be used with credentials: true (browsers refuse a credentialed "*"); list the origins, or set credentials: false' })
    return false
  }
}

/** A policy from matchers already built (the allow matcher already without refused entries). */
export function compilePolicyWith (name: string, config: PolicyConfig, allowMatcher: OriginMatcher, denyMatcher: OriginMatcher): CompiledPolicy {
  const allowAll = allowMatcher.any !== undefined && !config.credentials
  const allowHeaders = config.allowHeaders === '*'
    ? '*' as const
    : new Set(config.allowHeaders.map((h) => h.toLowerCase()))
  const nextExpiry = [allowMatcher.nextExpiry, denyMatcher.nextExpiry]
    .filter((t): t is number => t !== undefined)
    .reduce<number | undefined>((a, b) => (a === undefined || b < a ? b : a), undefined)

  return {
    name,
    config,
    mode: config.mode,
    noOrigin: config.noOrigin,
    credentials: config.credentials,
    preflightStatus: config.preflightStatus,
    privateNetwork: config.privateNetwork,
    allow: allowMatcher,
    deny: denyMatcher,
    allowAll,
    varyOrigin: !(allowAll && denyMatcher.size === 0),
    methods: new Set(config.methods),
    allowHeaders,
    headerValues: {
      allowMethods: config.methods.join(', '),
      allowHeaders: config.allowHeaders === '*' ? undefined : config.allowHeaders.join(', '),
      maxAge: config.maxAge === undefined ? undefined : String(config.maxAge),
      exposeHeaders: config.exposeHeaders.length > 0 ? config.exposeHeaders.join(', ') : undefined
    },
    nextExpiry
  }
}

/** The file's entries of one policy, with their config paths for error messages. */
export function fileEntries (name: string, config: PolicyConfig, extraOrigins: readonly string[] = []): { allow: RawEntry[], deny: RawEntry[] } {
  return {
    allow: [
      ...config.origins.map((value, i) => ({ value, source: 'file', where: `policies.${name}.origins[${i}]` })),
      ...extraOrigins.map((value, i) => ({ value, source: 'env', where: `CORSGATE_ORIGINS[${i}]` }))
    ],
    deny: config.deny.map((value, i) => ({ value, source: 'file', where: `policies.${name}.deny[${i}]` }))
  }
}
