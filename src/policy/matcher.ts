// A compiled set of origin patterns. Lookup cost stays flat as the list grows: exact origins
// are one Map lookup, `*.` wildcards one lookup per label of the request's host (suffix walk),
// `:*` ports one lookup. Only `re:` patterns are scanned, and they are few by nature.
import { parseSerializedOrigin, type OriginPattern } from './origin-pattern.js'

/** Where an entry came from: `file`, `redis`, `redis-expiring`, `env`. */
export type EntrySource = string

export interface MatcherEntry {
  pattern: OriginPattern
  source: EntrySource
  /** Unix ms after which the entry no longer matches (expiring Redis entries). */
  expiresAt?: number
  /** Where it was written (`policies.default.origins[2]`, a Redis key), for error messages. */
  where?: string
}

export class OriginMatcher {
  readonly size: number
  /** The `*` entry, when listed. */
  readonly any: MatcherEntry | undefined
  private readonly nullRule: MatcherEntry | undefined
  private readonly exact: ReadonlyMap<string, MatcherEntry>
  /**
   * scheme → port (`''` default, `*` any) → suffix → entry. Nested maps rather than one map on
   * a `scheme|port|suffix` key: the suffix walk then hashes only the host's own suffixes and
   * builds no key string per label.
   */
  private readonly subdomains: ReadonlyMap<string, ReadonlyMap<string, ReadonlyMap<string, MatcherEntry>>>
  /** scheme → host → entry. */
  private readonly anyPort: ReadonlyMap<string, ReadonlyMap<string, MatcherEntry>>
  private readonly anyPortCount: number
  private readonly regexes: readonly MatcherEntry[]
  private readonly needsParse: boolean
  /** Earliest future expiry among entries, for the caller's timer. */
  readonly nextExpiry: number | undefined

  /** Builds the matcher in one go. For a large list that must not block, see `OriginMatcherBuilder`. */
  constructor (entries: Iterable<MatcherEntry>)
  // `Tables` is module-private: only `OriginMatcherBuilder.build()` hands its tables over.
  constructor (entries: Iterable<MatcherEntry> | Tables) {
    let t: Tables
    if (entries instanceof Tables) {
      t = entries
    } else {
      t = new Tables()
      for (const entry of entries) t.add(entry)
    }
    this.size = t.size
    this.any = t.any
    this.nullRule = t.nullRule
    this.exact = t.exact
    this.subdomains = t.subdomains
    this.anyPort = t.anyPort
    this.anyPortCount = t.anyPortCount
    this.regexes = t.regexes
    this.nextExpiry = t.nextExpiry
    this.needsParse = t.subdomainCount > 0 || t.anyPortCount > 0 || t.regexes.length > 0
  }

  /**
   * The entry that matches `origin` (the raw header value, byte for byte), or undefined.
   * `now` is only consulted for expiring entries.
   */
  match (origin: string, now: number): MatcherEntry | undefined {
    if (origin === 'null') return live(this.nullRule, now)
    const exact = live(this.exact.get(origin), now)
    if (exact !== undefined) return exact
    if (!this.needsParse) return undefined
    const o = parseSerializedOrigin(origin)
    if (o === undefined) return undefined

    if (this.anyPortCount > 0) {
      const hit = live(this.anyPort.get(o.scheme)?.get(o.host), now)
      if (hit !== undefined) return hit
    }
    const byPort = this.subdomains.get(o.scheme)
    if (byPort !== undefined && !o.host.startsWith('[')) {
      const samePort = byPort.get(o.port)
      const anyPort = byPort.get('*')
      // Walk the host's proper suffixes: a.b.example.com → b.example.com → example.com → com.
      // The apex itself is never tried, so `*.example.com` can never match `example.com`.
      let dot = o.host.indexOf('.')
      while (dot >= 0) {
        const suffix = o.host.slice(dot + 1)
        const hit = live(samePort?.get(suffix), now) ?? live(anyPort?.get(suffix), now)
        if (hit !== undefined) return hit
        dot = o.host.indexOf('.', dot + 1)
      }
    }
    for (const entry of this.regexes) {
      if (entry.pattern.kind === 'regex' && entry.pattern.regex.matches(origin)) {
        const hit = live(entry, now)
        if (hit !== undefined) return hit
      }
    }
    return undefined
  }

  /** Every entry, for `/policies` and `corsgate origins list`. */
  * entries (): IterableIterator<MatcherEntry> {
    if (this.any !== undefined) yield this.any
    if (this.nullRule !== undefined) yield this.nullRule
    yield * this.exact.values()
    for (const byPort of this.subdomains.values()) for (const bySuffix of byPort.values()) yield * bySuffix.values()
    for (const byHost of this.anyPort.values()) yield * byHost.values()
    yield * this.regexes
  }
}

/**
 * Builds an `OriginMatcher` a few entries at a time, so a caller can yield to the event loop
 * between batches (`buildSnapshotInSlices`). `build()` seals it: the matcher takes over the
 * tables, and any later `add()` throws, so a built matcher never changes. Adding the same
 * entries in the same order gives the same matcher as `new OriginMatcher(entries)`.
 */
export class OriginMatcherBuilder {
  private tables: Tables | undefined = new Tables()

  /** Entries added so far. */
  get size (): number {
    return this.tables?.size ?? 0
  }

  add (entry: MatcherEntry): this {
    if (this.tables === undefined) throw new Error('OriginMatcherBuilder: add() after build()')
    this.tables.add(entry)
    return this
  }

  build (): OriginMatcher {
    if (this.tables === undefined) throw new Error('OriginMatcherBuilder: build() called twice')
    const tables = this.tables
    this.tables = undefined
    // The constructor's implementation also takes `Tables`; its public signature does not.
    return new (OriginMatcher as unknown as new (t: Tables) => OriginMatcher)(tables)
  }
}

/** The lookup tables while they are being filled; an `OriginMatcher` takes them over once. */
class Tables {
  size = 0
  any: MatcherEntry | undefined
  nullRule: MatcherEntry | undefined
  nextExpiry: number | undefined
  readonly exact = new Map<string, MatcherEntry>()
  readonly subdomains = new Map<string, Map<string, Map<string, MatcherEntry>>>()
  subdomainCount = 0
  readonly anyPort = new Map<string, Map<string, MatcherEntry>>()
  anyPortCount = 0
  readonly regexes: MatcherEntry[] = []

  add (entry: MatcherEntry): void {
    this.size++
    if (entry.expiresAt !== undefined && (this.nextExpiry === undefined || entry.expiresAt < this.nextExpiry)) this.nextExpiry = entry.expiresAt
    const p = entry.pattern
    switch (p.kind) {
      case 'any': this.any = keepLonger(this.any, entry); break
      case 'null': this.nullRule = keepLonger(this.nullRule, entry); break
      case 'exact': this.exact.set(p.origin, keepLonger(this.exact.get(p.origin), entry)); break
      case 'subdomain': {
        const bySuffix = nested(nested(this.subdomains, p.scheme), p.port)
        const prior = bySuffix.get(p.suffix)
        if (prior === undefined) this.subdomainCount++
        bySuffix.set(p.suffix, keepLonger(prior, entry))
        break
      }
      case 'any-port': {
        const byHost = nested(this.anyPort, p.scheme)
        const prior = byHost.get(p.host)
        if (prior === undefined) this.anyPortCount++
        byHost.set(p.host, keepLonger(prior, entry))
        break
      }
      case 'regex': this.regexes.push(entry); break
    }
  }
}

function nested<V> (map: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let inner = map.get(key)
  if (inner === undefined) {
    inner = new Map()
    map.set(key, inner)
  }
  return inner
}

// When one pattern arrives from two sources, the one that never expires (or expires later) wins.
function keepLonger (a: MatcherEntry | undefined, b: MatcherEntry): MatcherEntry {
  if (a === undefined) return b
  if (a.expiresAt === undefined) return a
  if (b.expiresAt === undefined) return b
  return a.expiresAt >= b.expiresAt ? a : b
}

function live (entry: MatcherEntry | undefined, now: number): MatcherEntry | undefined {
  if (entry === undefined) return undefined
  if (entry.expiresAt !== undefined && entry.expiresAt <= now) return undefined
  return entry
}
