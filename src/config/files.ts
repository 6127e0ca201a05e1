// Files a configuration names (CA bundles, secret files) are read when the gateway starts;
// they are checked when the config is loaded, so `validate` refuses what `start` would, and
// `start` stops with exit 2 naming the field instead of a stack trace at the first connection.
import { readFileSync } from 'node:fs'
import type { Config } from './schema.js'

interface ReferencedFile {
  field: string
  file: string
  /** A PEM bundle: must hold at least one certificate. */
  pem?: boolean
  /** A secret: must hold something besides white space. */
  secret?: boolean
}

/** Every file the config refers to, named by its field. */
export function referencedFiles (config: Config): ReferencedFile[] {
  const out: ReferencedFile[] = []
  if (config.server.upstreamCaFile !== undefined) out.push({ field: 'server.upstreamCaFile', file: config.server.upstreamCaFile, pem: true })
  if (config.redis?.passwordFile !== undefined) out.push({ field: 'redis.passwordFile', file: config.redis.passwordFile })
  if (config.redis?.tlsCaFile !== undefined) out.push({ field: 'redis.tlsCaFile', file: config.redis.tlsCaFile, pem: true })
  if (config.admin.auth?.tokenFile !== undefined) out.push({ field: 'admin.auth.tokenFile', file: config.admin.auth.tokenFile, secret: true })
  return out
}

/** One problem line per file that cannot be read (or is not a PEM bundle where one is needed). */
export function referencedFileProblems (config: Config): string[] {
  const problems: string[] = []
  for (const { field, file, pem, secret } of referencedFiles(config)) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message
      problems.push(`${field}: cannot read ${file}: ${code ?? 'error'} (${why})`)
      continue
    }
    if (pem === true && !text.includes('-----BEGIN CERTIFICATE-----')) problems.push(`${field}: ${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`)
    // An empty token would let an empty `Authorization: Bearer ` through: never fail open.
    if (secret === true && text.trim() === '') problems.push(`${field}: ${file} is empty`)
  }
  return problems
}
