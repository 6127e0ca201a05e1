// The Redis key names of SPEC.md "Redis: live whitelists", in one place for the gateway's
// source and the `corsgate origins` command.

export interface PolicyKeys {
  /** SET of allow patterns. */
  origins: string
  /** SET of deny patterns. */
  deny: string
  /** ZSET of allow patterns, score = expiry in Unix ms. */
  expiring: string
}

export function policyKeys (prefix: string, policy: string): PolicyKeys {
  const base = `${prefix}policy:${policy}`
  return { origins: `${base}:origins`, deny: `${base}:deny`, expiring: `${base}:origins:expiring` }
}

/** The pub/sub channel: a message is a policy name or `*`. */
export function reloadChannel (prefix: string): string {
  return `${prefix}reload`
}

/** The PSUBSCRIBE pattern for keyspace notifications on every policy key of `prefix`. */
export function keyspacePattern (prefix: string, db: number): string {
  return `__keyspace@${db}__:${escapeGlob(prefix)}policy:*`
}

/**
 * The policy a key (or keyspace channel) belongs to, or undefined when it is not one of
 * our policy keys. `{prefix}policy:{name}:origins[:expiring]` or `…:deny`.
 */
export function policyOfKey (prefix: string, key: string): string | undefined {
  const head = `${prefix}policy:`
  if (!key.startsWith(head)) return undefined
  const rest = key.slice(head.length)
  const match = /^([^:]+):(origins|deny|origins:expiring)$/.exec(rest)
  return match?.[1]
}

// Redis glob syntax: `*`, `?`, `[…]` and `\` are special in PSUBSCRIBE patterns.
export function escapeGlob (text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}
