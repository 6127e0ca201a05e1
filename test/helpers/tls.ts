// A test certificate authority and server certificates, made at test time with the openssl
// CLI, plus the clients the TLS suites use: HTTP/1.1 over TLS (node:https), HTTP/2
// (node:http2) and undici with `allowH2`, all trusting the test CA only.
import { execFileSync } from 'node:child_process'
import { createHash, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders as H2Headers } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request as undiciRequest } from 'undici'

export interface TestCa {
  dir: string
  caFile: string
  ca: Buffer
  /** Issues a server certificate for localhost and 127.0.0.1; returns its files. */
  issue: (name: string, cn?: string) => { certFile: string, keyFile: string, cert: Buffer }
  /** base64 SHA-256 of a certificate's SubjectPublicKeyInfo (Chromium's --ignore-certificate-errors-spki-list). */
  spki: (cert: Buffer) => string
  /** Issues a client certificate (for mutual TLS). */
  issueClient: (name: string) => { cert: Buffer, key: Buffer }
  remove: () => void
}

function openssl (args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

export function makeTestCa (): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-tls-'))
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=corsgate test CA', '-days', '2'], dir)
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n')
  const sign = (name: string, cn: string, ext: string): void => {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir)
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext], dir)
  }
  const caFile = join(dir, 'ca.crt')
  return {
    dir,
    caFile,
    ca: readFileSync(caFile),
    issue: (name, cn = 'localhost') => {
      sign(name, cn, 'server.ext')
      return { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`), cert: readFileSync(join(dir, `${name}.crt`)) }
    },
    issueClient: (name) => {
      sign(name, name, 'client.ext')
      return { cert: readFileSync(join(dir, `${name}.crt`)), key: readFileSync(join(dir, `${name}.key`)) }
    },
    spki: (cert) => createHash('sha256').update(new X509Certificate(cert).publicKey.export({ type: 'spki', format: 'der' })).digest('base64'),
    remove: () => { rmSync(dir, { recursive: true, force: true }) }
  }
}

/** One answer, whatever client got it: status, headers (lower-case names, joined values), body. */
export interface TlsAnswer {
  status: number
  headers: Record<string, string>
  body: string
  /** The protocol the answer came over ('h2' or 'http/1.1'). */
  protocol: string
}

export interface TlsRequest {
  method?: string
  headers?: Record<string, string>
  body?: string
}

function flatten (headers: Record<string, string | string[] | number | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name.startsWith(':')) continue
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value)
  }
  return out
}

/** HTTP/1.1 over TLS with node:https (ALPN offers http/1.1 only). */
export async function sendHttps (url: string, ca: Buffer, req: TlsRequest = {}): Promise<TlsAnswer> {
  return await new Promise((resolve, reject) => {
    // ALPN offers http/1.1 only, as a client without HTTP/2 does.
    const options = { method: req.method ?? 'GET', headers: req.headers, ca, agent: false, ALPNProtocols: ['http/1.1'] }
    const r = httpsRequest(url, options, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode!, headers: flatten(res.headers), body: Buffer.concat(chunks).toString(), protocol: (res.socket as { alpnProtocol?: string }).alpnProtocol || 'http/1.1' }) })
      res.on('error', reject)
    })
    r.on('error', reject)
    r.end(req.body)
  })
}

/** An HTTP/2 session with node:http2, trusting `ca`. */
export async function h2Session (url: string, ca: Buffer): Promise<ClientHttp2Session> {
  const session = h2connect(url, { ca })
  // Connected, and the server's SETTINGS received (so remoteSettings are the server's).
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => { resolve() })
    session.once('error', reject)
  })
  return session
}

/** One request on an HTTP/2 session. */
export async function sendH2 (session: ClientHttp2Session, path: string, req: TlsRequest = {}): Promise<TlsAnswer> {
  return await new Promise((resolve, reject) => {
    const stream = session.request({ ':method': req.method ?? 'GET', ':path': path, ...req.headers }, { endStream: req.body === undefined })
    let head: H2Headers | undefined
    const chunks: Buffer[] = []
    stream.on('response', (h) => { head = h })
    stream.on('data', (c: Buffer) => chunks.push(c))
    let ended = false
    stream.on('end', () => {
      ended = true
      if (head === undefined) {
        reject(new Error(`stream ended without an answer (code ${stream.rstCode})`))
        return
      }
      resolve({ status: Number(head?.[':status']), headers: flatten(head ?? {}), body: Buffer.concat(chunks).toString(), protocol: 'h2' })
    })
    stream.on('error', reject)
    // A session destroyed under it closes the stream without an error.
    stream.on('close', () => { if (!ended) reject(new Error(`stream closed before its end (code ${stream.rstCode})`)) })
    if (req.body !== undefined) stream.end(req.body)
  })
}

/** An undici agent that negotiates h2 by ALPN, trusting `ca`. */
export function undiciH2Agent (ca: Buffer): Agent {
  return new Agent({ allowH2: true, connect: { ca } })
}

export async function sendUndici (agent: Agent, url: string, req: TlsRequest = {}): Promise<TlsAnswer> {
  const res = await undiciRequest(url, { dispatcher: agent, method: (req.method ?? 'GET') as 'GET', headers: req.headers, body: req.body })
  const body = await res.body.text()
  return { status: res.statusCode, headers: flatten(res.headers), body, protocol: 'undici' }
}
