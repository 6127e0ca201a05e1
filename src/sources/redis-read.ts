// The watched read: every policy's Redis keys at one consistent moment, turned into entries
// for the snapshot build. No state and no scheduling: the reload loop (redis-reload.ts) calls it.
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { EntryError, RawEntry } from '../policy/compile.js'
import type { LiveEntries } from '../policy/snapshot.js'
import { policyKeys } from './redis-keys.js'

/** What one read of every policy's keys returned, kept to skip recompiling an unchanged list. */
export type RawRead = Array<string | string[]>

export interface EntryCounts { allow: number, deny: number, expiring: number }

export interface PolicyRead {
  raw: RawRead
  live: Map<string, LiveEntries>
  errors: EntryError[]
  counts: EntryCounts
}

export interface ReadTarget {
  prefix: string
  /** The policies whose keys are read, asked again on every attempt (a config reload may change them). */
  policies: () => string[]
  log: Logger
}

/** Keys holding at most this many members in all are read in one MULTI. */
const ATOMIC_READ_BUDGET = 5000
/** Reads in a row that may be aborted by edits before a reload counts as failed. */
const READ_ATTEMPTS = 3
/** SSCAN/ZSCAN `COUNT` for larger keys: a page decodes in well under a millisecond. */
const SCAN_PAGE = 1000

/**
 * Reads every policy's keys at one consistent moment. Under `WATCH` on every key: the sizes
 * (SCARD/ZCARD), then keys holding more than `ATOMIC_READ_BUDGET` members in all in
 * SSCAN/ZSCAN pages of `SCAN_PAGE` (decoding a 100k-member reply in one go blocks the event
 * loop for tens of milliseconds), then the small keys in one MULTI. If any key changed
 * meanwhile, EXEC aborts and the read starts again, so an allow list from before an edit is
 * never combined with a deny list from after it. After `READ_ATTEMPTS` aborted reads the read
 * fails, and the last good whitelist stays.
 */
export async function readPolicies (client: Redis, target: ReadTarget): Promise<PolicyRead> {
  for (let attempt = 1; ; attempt++) {
    const reads = await readKeys(client, target)
    if (reads !== undefined) return await toEntries(client, reads)
    if (attempt === READ_ATTEMPTS) throw new Error(`the policy keys changed during ${READ_ATTEMPTS} reads in a row`)
    target.log.debug({ attempt }, 'policy keys changed during the read; reading again')
  }
}

/** Did two reads return the same members in the same order (so nothing needs recompiling)? */
export function sameRead (a: RawRead, b: RawRead): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i]
    const y = b[i]
    if (typeof x === 'string' || typeof y === 'string') {
      if (x !== y) return false
      continue
    }
    if (x === undefined || y === undefined || x.length !== y.length) return false
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return false
  }
  return true
}

/** One policy key in a read: what it held (`members`, `entries`), or that it had the wrong type. */
interface KeyRead {
  policy: string
  key: string
  kind: 'allow' | 'deny' | 'expiring'
  /** What was read, in reply order (expiring keys: member and score alternate), for change detection. */
  members?: string[]
  entries?: RawEntry[]
  wrongType?: boolean
}

/** One watched read of every key; undefined when a key changed during it (EXEC aborted). */
async function readKeys (client: Redis, { prefix, policies }: ReadTarget): Promise<KeyRead[] | undefined> {
  const now = Date.now()
  const reads: KeyRead[] = []
  for (const name of policies()) {
    const keys = policyKeys(prefix, name)
    reads.push({ policy: name, key: keys.origins, kind: 'allow' }, { policy: name, key: keys.deny, kind: 'deny' }, { policy: name, key: keys.expiring, kind: 'expiring' })
  }
  await client.watch(reads.map((r) => r.key))
  try {
    const sizing = client.pipeline()
    for (const r of reads) {
      if (r.kind === 'expiring') sizing.zcard(r.key)
      else sizing.scard(r.key)
    }
    // A pipeline, not a MULTI: an EXEC here would end the watch.
    const sizes = (await sizing.exec()) ?? []
    const atomic: KeyRead[] = []
    const paged: KeyRead[] = []
    let budget = ATOMIC_READ_BUDGET
    reads.forEach((r, i) => {
      const [err, size] = sizes[i] ?? [new Error('no reply'), null]
      if (err !== null) return noteWrongType(r, err)
      const n = Number(size)
      if (n === 0) r.members = []
      else if (n <= budget) { budget -= n; atomic.push(r) } else paged.push(r)
    })
    for (const r of paged) {
      try {
        await scanKey(client, r, now)
      } catch (err) {
        noteWrongType(r, err as Error)
      }
    }
    // The EXEC that ends the watch: it runs only if no key changed since WATCH.
    const multi = client.multi()
    for (const r of atomic) {
      // Already-expired members are left for the CLI to prune; we just do not read them.
      if (r.kind === 'expiring') multi.zrangebyscore(r.key, `(${now}`, '+inf', 'WITHSCORES')
      else multi.smembers(r.key)
    }
    const replies = await multi.exec()
    if (replies === null) return undefined
    atomic.forEach((r, i) => {
      const [err, value] = replies[i] ?? [new Error('no reply'), null]
      if (err !== null) return noteWrongType(r, err)
      takeMembers(r, Array.isArray(value) ? value : [], now)
    })
    return reads
  } catch (err) {
    // EXEC was not reached: drop the watch so it cannot abort a later read.
    await client.unwatch().catch(() => {})
    throw err
  }
}

async function toEntries (client: Redis, reads: KeyRead[]): Promise<PolicyRead> {
  const raw: RawRead = []
  const live = new Map<string, LiveEntries>()
  const errors: EntryError[] = []
  const counts = { allow: 0, deny: 0, expiring: 0 }
  for (const r of reads) {
    let entries = live.get(r.policy)
    if (entries === undefined) {
      entries = { allow: [], deny: [] }
      live.set(r.policy, entries)
    }
    if (r.wrongType === true) {
      raw.push(`!${r.key}`)
      // Reported like an invalid entry: logged with its key and counted; the rest loads.
      let type = 'unknown'
      try { type = await client.type(r.key) } catch { /* the report is still useful without it */ }
      const expected = r.kind === 'expiring' ? 'zset' : 'set'
      errors.push({ where: r.key, value: `(${type})`, message: `WRONGTYPE: the key holds a ${type}, corsgate expects a ${expected}; the key is ignored` })
      continue
    }
    raw.push(r.members ?? [])
    for (const e of r.entries ?? []) (r.kind === 'deny' ? entries.deny : entries.allow).push(e)
    counts[r.kind] += r.entries?.length ?? 0
  }
  return { raw, live, errors, counts }
}

function noteWrongType (r: KeyRead, err: Error): void {
  if (!/^WRONGTYPE/.test(err.message)) throw err
  r.wrongType = true
}

/** Adds one reply (SMEMBERS, a ZRANGEBYSCORE WITHSCORES, or one scan page) to `r`. */
function takeMembers (r: KeyRead, reply: unknown[], now: number): void {
  const members = r.members ?? (r.members = [])
  const entries = r.entries ?? (r.entries = [])
  if (r.kind === 'expiring') {
    for (const [value, expiresAt] of zsetPairs(reply)) {
      // Already-expired members are left for the CLI to prune; we just do not read them.
      if (expiresAt <= now) continue
      members.push(value, String(expiresAt))
      entries.push({ value, source: 'redis-expiring', where: r.key, expiresAt })
    }
    return
  }
  for (const value of reply as string[]) {
    members.push(value)
    entries.push({ value, source: 'redis', where: r.key })
  }
}

/** Reads a large key page by page; a member returned twice (SCAN may do that) counts once. */
async function scanKey (client: Redis, r: KeyRead, now: number): Promise<void> {
  const seen = new Set<string>()
  let cursor = '0'
  do {
    const [next, page] = r.kind === 'expiring'
      ? await client.zscan(r.key, cursor, 'COUNT', SCAN_PAGE)
      : await client.sscan(r.key, cursor, 'COUNT', SCAN_PAGE)
    const fresh: string[] = []
    const step = r.kind === 'expiring' ? 2 : 1
    for (let i = 0; i + step - 1 < page.length; i += step) {
      const member = page[i]!
      if (seen.has(member)) continue
      seen.add(member)
      for (let j = 0; j < step; j++) fresh.push(page[i + j]!)
    }
    takeMembers(r, fresh, now)
    cursor = next
  } while (cursor !== '0')
  r.members ??= []
}

/** `ZRANGEBYSCORE … WITHSCORES`: flat `[m, s, m, s]` (RESP2) or pairs `[[m, s]]` (RESP3). */
function zsetPairs (reply: unknown[]): Array<[string, number]> {
  const out: Array<[string, number]> = []
  if (reply.length > 0 && Array.isArray(reply[0])) {
    for (const pair of reply as unknown[][]) out.push([String(pair[0]), Number(pair[1])])
  } else {
    for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), Number(reply[i + 1])])
  }
  return out
}
