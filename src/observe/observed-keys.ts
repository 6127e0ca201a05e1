// The Redis layout of observed origins (docs/rolling-out.md "Keys"): one HASH per policy and
// hour, `{keyPrefix}observed:{policy}:{YYYYMMDDHH}` (UTC), with a TTL of the retention. Each
// replica adds its counts with HINCRBY, so the hash holds the sum over replicas. Fields:
//
//   `{origin} {outcome}`        requests with that outcome (allowed, denied, would_deny, same_origin)
//   `{origin} r:{reason}`       requests with that reason
//   `{origin} first` / `last`   Unix ms first and last seen (first: HSETNX, last: HSET)
//   `{origin} route:{label}`    1 for each route the origin hit
//
// `{origin}` is the header as sent, or `(none)` (no Origin), `(other)` (past maxOrigins),
// `(invalid)` (not a serialized origin). A serialized origin holds no space and no
// parentheses, so the first space ends it.

export const HOUR_MS = 3_600_000

/** `2026120115` for 2026-12-01T15:xx UTC. */
export function hourStamp (t: number): string {
  const d = new Date(t)
  const p = (n: number): string => String(n).padStart(2, '0')
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}`
}

export function observedKey (prefix: string, policy: string, t: number): string {
  return `${prefix}observed:${policy}:${hourStamp(t)}`
}

/** The keys of the hours that overlap `[now - sinceMs, now]`, oldest first. */
export function observedKeysSince (prefix: string, policy: string, sinceMs: number, now: number): string[] {
  const keys: string[] = []
  for (let h = Math.floor((now - sinceMs) / HOUR_MS); h <= Math.floor(now / HOUR_MS); h++) keys.push(observedKey(prefix, policy, h * HOUR_MS))
  return keys
}

export function field (origin: string, name: string): string {
  return `${origin} ${name}`
}

/** Splits a field into its origin and the rest; undefined for a field that is not ours. */
export function splitField (f: string): [string, string] | undefined {
  const space = f.indexOf(' ')
  if (space <= 0) return undefined
  return [f.slice(0, space), f.slice(space + 1)]
}
