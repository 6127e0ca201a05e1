// The public port's certificate: read from its PEM files at start, and read again when they
// change (cert-manager renewing, a Kubernetes Secret updated), without a restart and without
// dropping a connection: `setSecureContext` applies to handshakes from then on, while open
// connections keep the context they began with. A new pair that does not load (a key for
// another certificate, a file half written) is logged and the pair in use kept.
//
// The directories are watched, not the files: a Kubernetes Secret volume swaps a `..data`
// symlink to a new directory, so the file a watch was opened on never changes, and an editor
// or `mv` replaces a file with a new inode. Every event in a watched directory leads to one
// read of all the files a moment later (one renewal writes the certificate and the key one
// after the other); the files are applied only when their contents differ from those in use.
import { X509Certificate } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFileSync, watch, type FSWatcher } from 'node:fs'
import { dirname } from 'node:path'
import { createSecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'
import type { TlsConfig } from '../config/schema.js'

/** The PEM contents of one certificate, key and (optional) client CA. */
interface CertificateSet {
  cert: Buffer
  key: Buffer
  ca: Buffer | undefined
}

/** What the log and the `reloaded` event say of a certificate. */
export interface CertificateSummary {
  subject: string
  notAfter: string
  fingerprint256: string
}

// Long enough for a renewal's second file to land; short enough to apply it at once.
const SETTLE_MS = 200

function readSet (tls: TlsConfig): CertificateSet {
  return { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), ca: tls.caFile === undefined ? undefined : readFileSync(tls.caFile) }
}

function contextOptions (tls: TlsConfig, set: CertificateSet): SecureContextOptions {
  return { cert: set.cert, key: set.key, ...(set.ca === undefined ? {} : { ca: set.ca }), minVersion: tls.minVersion }
}

function sameSet (a: CertificateSet, b: CertificateSet): boolean {
  return a.cert.equals(b.cert) && a.key.equals(b.key) && (a.ca === undefined ? b.ca === undefined : b.ca !== undefined && a.ca.equals(b.ca))
}

export function summarise (cert: Buffer): CertificateSummary {
  const x509 = new X509Certificate(cert)
  return { subject: x509.subject.replace(/\n/g, ', '), notAfter: new Date(x509.validTo).toISOString(), fingerprint256: x509.fingerprint256 }
}

/**
 * The secure context options the public server starts with, and the reloader that keeps them
 * current. Events: `reloaded` (CertificateSummary) once a new pair is in use, `rejected` (Error)
 * when a changed pair could not be loaded and the old one was kept.
 */
export class CertificateReloader extends EventEmitter {
  private current: CertificateSet
  private readonly watchers: FSWatcher[] = []
  private timer: NodeJS.Timeout | undefined
  private server: TlsServer | undefined

  constructor (private readonly tls: TlsConfig, private readonly logger: Logger) {
    super()
    this.current = readSet(tls)
  }

  /** The options for `createSecureServer`/`setSecureContext`: the certificate in use. */
  get options (): SecureContextOptions {
    return contextOptions(this.tls, this.current)
  }

  get summary (): CertificateSummary {
    return summarise(this.current.cert)
  }

  /** Watches the files' directories and applies changes to `server` until `stop()`. */
  start (server: TlsServer): void {
    this.server = server
    const dirs = new Set([this.tls.certFile, this.tls.keyFile, ...(this.tls.caFile === undefined ? [] : [this.tls.caFile])].map((f) => dirname(f)))
    for (const dir of dirs) {
      try {
        const watcher = watch(dir, { persistent: false }, () => { this.schedule() })
        watcher.on('error', (err) => { this.logger.warn({ dir, error: err.message }, 'certificate directory watch failed: certificates are no longer reloaded from it') })
        this.watchers.push(watcher)
      } catch (err) {
        this.logger.warn({ dir, error: (err as Error).message }, 'cannot watch the certificate directory: certificates will not be reloaded')
      }
    }
  }

  stop (): void {
    clearTimeout(this.timer)
    for (const watcher of this.watchers) watcher.close()
    this.watchers.length = 0
  }

  private schedule (): void {
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { this.reload() }, SETTLE_MS)
    this.timer.unref()
  }

  /**
   * Reads the files now and applies them if they changed and load. Returns what happened:
   * `unchanged`, `reloaded` or `rejected` (the old pair kept).
   */
  reload (): 'unchanged' | 'reloaded' | 'rejected' {
    let next: CertificateSet
    let options: SecureContextOptions
    try {
      next = readSet(this.tls)
      if (sameSet(next, this.current)) return 'unchanged'
      options = contextOptions(this.tls, next)
      // Loaded aside first: a key that is not the certificate's fails here, not in a handshake.
      createSecureContext(options)
    } catch (err) {
      this.logger.error({ certFile: this.tls.certFile, keyFile: this.tls.keyFile, error: (err as Error).message }, 'new TLS certificate not loaded: keeping the one in use')
      this.emit('rejected', err)
      return 'rejected'
    }
    this.server?.setSecureContext(options)
    this.current = next
    const summary = summarise(next.cert)
    this.logger.info({ certFile: this.tls.certFile, ...summary }, 'TLS certificate reloaded')
    this.emit('reloaded', summary)
    return 'reloaded'
  }
}
