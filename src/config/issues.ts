// Schema issues said the way a person reads them: "must be true or false, got "yes"" rather
// than zod's "Invalid input: expected boolean, received string". Messages the schema gives
// itself (a refine, a regex with a message) are kept as they are.
import type { z } from 'zod'

const NOUN: Record<string, string> = {
  record: 'a map of names to settings',
  object: 'a section of key: value settings',
  array: 'a list',
  boolean: 'true or false',
  number: 'a number',
  int: 'a whole number',
  string: 'a text value',
  literal: 'a fixed value'
}

/** The human text for one issue, without the field name. `input` is the value found at its path. */
export function humanIssue (issue: z.core.$ZodIssue, input: unknown): string {
  const got = input === undefined ? '' : `, got ${shown(input)}`
  // A message the schema gives itself is kept (zod's own start "Invalid …" or "Too …").
  if (!/^(Invalid|Too (small|big))/.test(issue.message)) return issue.message
  switch (issue.code) {
    case 'invalid_type':
      if (input === undefined) return `is required (${NOUN[issue.expected] ?? issue.expected})`
      return `must be ${NOUN[issue.expected] ?? issue.expected}${got}`
    case 'invalid_value':
      return issue.values.length === 1 ? `must be ${shown(issue.values[0])}${got}` : `must be one of ${issue.values.map(shown).join(', ')}${got}`
    case 'too_big':
      if (issue.origin === 'array') return `must have at most ${String(issue.maximum)} entries`
      if (issue.origin === 'string') return `must be at most ${String(issue.maximum)} characters`
      return `must be at most ${String(issue.maximum)}${got}`
    case 'too_small':
      if (issue.origin === 'array') return `must have at least ${String(issue.minimum)} ${Number(issue.minimum) === 1 ? 'entry' : 'entries'}`
      if (issue.origin === 'string') return Number(issue.minimum) === 1 ? 'must not be empty' : `must be at least ${String(issue.minimum)} characters`
      return `must be at least ${String(issue.minimum)}${got}`
    case 'invalid_union': {
      const choices = issue.errors.map((branch) => {
        const first = branch[0]
        if (first === undefined) return undefined
        if (first.code === 'invalid_value') return first.values.map(shown).join(' or ')
        if (first.code === 'invalid_type') return NOUN[first.expected] ?? first.expected
        return undefined
      })
      if (choices.every((c) => c !== undefined)) return `must be ${choices.join(' or ')}${got}`
      return `${issue.message}${got}`
    }
    case 'invalid_format':
      return `has the wrong form${got}`
    default:
      return issue.message.replace(/^Invalid input: /, '')
  }
}

/** The value at `path` in the raw document (undefined where it is missing). */
export function valueAt (raw: unknown, path: readonly PropertyKey[]): unknown {
  let node: unknown = raw
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<PropertyKey, unknown>)[part]
  }
  return node
}

function shown (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (Array.isArray(value)) return 'a list'
  if (value !== null && typeof value === 'object') return 'a section'
  return String(value)
}
