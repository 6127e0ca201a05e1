// The file `corsgate origins export` writes and `import` reads: the Redis whitelists of some
// policies as YAML, sorted so that a diff in git shows what changed. Expiring entries keep
// their expiry as an ISO 8601 time (millisecond precision, so they round-trip exactly).
//
//   version: 1
//   policies:
//     api:
//       origins: [https://partner.example.org]
//       deny: [https://evil.example.org]
//       expiring:
//         - { origin: https://pr-42.preview.example.org, expiresAt: 2026-12-08T15:20:00.000Z }
import { parseDocument, stringify } from 'yaml'
import { z } from 'zod'
import { OriginPatternError, parseOriginPattern } from '../policy/origin-pattern.js'
import type { PolicyLists } from '../sources/origin-lists.js'

export const FILE_VERSION = 1

const iso = z.string().refine((s) => /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(s) && !Number.isNaN(Date.parse(s)), 'must be an ISO 8601 time with a zone, e.g. 2026-12-08T15:20:00.000Z')

const fileSchema = z.strictObject({
  version: z.literal(FILE_VERSION, { error: `must be ${FILE_VERSION}` }),
  policies: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'policy names use letters, digits, "_", "-", "."'), z.strictObject({
    origins: z.array(z.string()).default([]),
    deny: z.array(z.string()).default([]),
    expiring: z.array(z.strictObject({ origin: z.string(), expiresAt: iso })).default([])
  }).nullable().transform((p) => p ?? { origins: [], deny: [], expiring: [] }))
})

export class OriginsFileError extends Error {
  constructor (readonly problems: string[]) {
    super(problems.join('\n'))
  }
}

/** The file's text for these lists, with a comment saying where they came from. */
export function formatOriginsFile (lists: ReadonlyMap<string, PolicyLists>, header: string): string {
  const policies: Record<string, unknown> = {}
  for (const [name, l] of [...lists].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
    policies[name] = {
      origins: l.origins,
      deny: l.deny,
      expiring: l.expiring.map((e) => ({ origin: e.origin, expiresAt: new Date(e.expiresAt).toISOString() }))
    }
  }
  return `${header.split('\n').map((line) => `# ${line}`).join('\n')}\n${stringify({ version: FILE_VERSION, policies }, { flowCollectionPadding: false })}`
}

/**
 * Parses and checks a file: every pattern is checked with the gateway's grammar and
 * normalised. Throws `OriginsFileError` listing every problem, each named by its place.
 */
export function parseOriginsFile (text: string): Map<string, PolicyLists> {
  const doc = parseDocument(text, { uniqueKeys: true })
  if (doc.errors.length > 0) throw new OriginsFileError(doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`))
  const parsed = fileSchema.safeParse(doc.toJS())
  if (!parsed.success) {
    throw new OriginsFileError(parsed.error.issues.map((i) => `${i.path.map((p, n) => typeof p === 'number' ? `[${p}]` : `${n === 0 ? '' : '.'}${String(p)}`).join('') || '(top level)'}: ${i.message.replace(/^Invalid input: /, '')}`))
  }
  const problems: string[] = []
  const out = new Map<string, PolicyLists>()
  const check = (text: string, where: string): string | undefined => {
    try {
      return parseOriginPattern(text).text
    } catch (err) {
      if (!(err instanceof OriginPatternError)) throw err
      problems.push(`${where}: ${err.message}`)
      return undefined
    }
  }
  for (const [name, p] of Object.entries(parsed.data.policies)) {
    const lists: PolicyLists = { origins: [], deny: [], expiring: [] }
    p.origins.forEach((o, i) => { const t = check(o, `policies.${name}.origins[${i}]`); if (t !== undefined) lists.origins.push(t) })
    p.deny.forEach((o, i) => { const t = check(o, `policies.${name}.deny[${i}]`); if (t !== undefined) lists.deny.push(t) })
    p.expiring.forEach((e, i) => {
      const t = check(e.origin, `policies.${name}.expiring[${i}].origin`)
      if (t !== undefined) lists.expiring.push({ origin: t, expiresAt: Date.parse(e.expiresAt) })
    })
    out.set(name, lists)
  }
  if (problems.length > 0) throw new OriginsFileError(problems)
  return out
}
