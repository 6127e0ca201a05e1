// Files a configuration names (CA bundles, secret files) are read when the gateway starts;
// they are checked when the config is loaded, so `validate` refuses what `start` would, and
// `start` stops with exit 2 naming the field instead of a stack trace at the first connection.
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import type { Config } from './schema.js'

interface ReferencedFile {
  field: string
  file: string
  /** A PEM bundle: must hold at least one certificate. */
  pem?: boolean
  /** A secret: must hold something besides white space. */
  secret?: boolean
  /** A PEM private key. */
  key?: boolean
}

/** Every file the config refers to, named by its field. */
export function referencedFiles (config: Config): ReferencedFile[] {
  const out: ReferencedFile[] = []
  if (config.server.upstreamCaFile !== undefined) out.push({ field: 'server.upstreamCaFile', file: config.server.upstreamCaFile, pem: true })
  if (config.redis?.passwordFile !== undefined) out.push({ field: 'redis.passwordFile', file: config.redis.passwordFile })
  const tls = config.server.tls
  if (tls !== undefined) {
    out.push({ field: 'server.tls.certFile', file: tls.certFile, pem: true }, { field: 'server.tls.keyFile', file: tls.keyFile, key: true })
    if (tls.caFile !== undefined) out.push({ field: 'server.tls.caFile', file: tls.caFile, pem: true })
  }
  if (config.redis?.tlsCaFile !== undefined) out.push({ field: 'redis.tlsCaFile', file: config.redis.tlsCaFile, pem: true })
  if (config.admin.auth?.tokenFile !== undefined) out.push({ field: 'admin.auth.tokenFile', file: config.admin.auth.tokenFile, secret: true })
  return out
}

/** One problem line per file that cannot be read (or is not a PEM bundle where one is needed). */
export function referencedFileProblems (config: Config): string[] {
  const problems: string[] = []
  for (const { field, file, pem, key, secret } of referencedFiles(config)) {
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
    if (key === true && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) problems.push(`${field}: ${file} holds no PEM private key ("-----BEGIN PRIVATE KEY-----")`)
  }
  const tls = config.server.tls
  if (tls !== undefined && problems.length === 0) {
    const pairProblem = certificatePairProblem(tls.certFile, tls.keyFile)
    if (pairProblem !== undefined) problems.push(`server.tls.keyFile: ${pairProblem}`)
  }
  return problems
}

/** Why a certificate and key cannot serve together (not a pair, a bad PEM), or undefined. */
export function certificatePairProblem (certFile: string, keyFile: string): string | undefined {
  try {
    createSecureContext({ cert: readFileSync(certFile), key: readFileSync(keyFile) })
    return undefined
  } catch (err) {
    return `${keyFile} and ${certFile} do not make a certificate and key pair: ${(err as Error).message}`
  }
}
