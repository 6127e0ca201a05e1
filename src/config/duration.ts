// Durations as people write them in config and on the command line: `7d`, `24h`, `1h30m`,
// `1500ms`. One grammar for `observe.retention`, `--since` and `--ttl`.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const DURATION = /^(\d+(ms|s|m|h|d|w))+$/

/** `7d`, `12h`, `1h30m`, `1500ms` → milliseconds; undefined when it is not such a text or is zero. */
export function parseDuration (text: string): number | undefined {
  if (!DURATION.test(text)) return undefined
  let total = 0
  for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) total += Number(n) * (UNIT_MS[unit!] ?? 0)
  return total > 0 ? total : undefined
}
