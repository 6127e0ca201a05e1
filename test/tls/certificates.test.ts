// The public port's certificate: refused at start when a file is missing, unreadable or not a
// pair (exit 2 naming the field); reloaded when the files change — in place, or by a
// Kubernetes Secret volume's symlink swap — for new connections while open ones keep
// working; a bad new pair logged and the old one kept; mutual TLS with a client CA.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { connect as h2connect } from 'node:http2'
import { join } from 'node:path'
import { connect as tlsConnect, type PeerCertificate } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { parseConfig, loadConfig, ConfigError } from '../../src/config/load.js'
import { startTestGateway, testConfigYaml } from '../helpers/gateway.js'
import { ROOT, cleanEnv } from '../helpers/cli-process.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { h2Session, makeTestCa, sendH2, sendHttps, type TestCa } from '../helpers/tls.js'

let ca: TestCa
let upstream: Upstream
t.before(async () => {
  ca = makeTestCa()
  upstream = await startUpstream()
})
t.teardown(async () => {
  await upstream.close()
  ca.remove()
})

const fingerprint = (pem: Buffer): string => new X509Certificate(pem).fingerprint256

/** The certificate a new TLS connection is served. */
async function servedFingerprint (url: string): Promise<string> {
  const { port } = new URL(url)
  const socket = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: ca.ca, servername: 'localhost', ALPNProtocols: ['h2'] })
  await once(socket, 'secureConnect')
  const cert: PeerCertificate = socket.getPeerCertificate()
  socket.destroy()
  return cert.fingerprint256
}

function routes (): Array<Record<string, unknown>> {
  return [{ path: '/', upstream: upstream.url }]
}

t.test('a rotated certificate is served to new connections; an open HTTP/2 session keeps working', async (t) => {
  const a = ca.issue('rot-a')
  const b = ca.issue('rot-b')
  const live = join(ca.dir, 'live-rotate')
  mkdirSync(live)
  copyFileSync(a.certFile, join(live, 'tls.crt'))
  copyFileSync(a.keyFile, join(live, 'tls.key'))
  const gw = await startTestGateway({ server: { tls: { certFile: join(live, 'tls.crt'), keyFile: join(live, 'tls.key') } }, routes: routes() })
  t.teardown(async () => { await gw.close() })
  t.equal(await servedFingerprint(gw.url), fingerprint(a.cert), 'the first certificate is served')

  const open = await h2Session(gw.url, ca.ca)
  t.teardown(() => { open.close() })
  t.equal((await sendH2(open, '/before')).status, 200)

  const reloaded = once(gw.gateway.publicServer.certificates!, 'reloaded')
  // As `cp` or an editor does: each file replaced by a rename (no half-written file is read).
  copyFileSync(b.certFile, join(live, 'tls.crt.tmp'))
  copyFileSync(b.keyFile, join(live, 'tls.key.tmp'))
  renameSync(join(live, 'tls.key.tmp'), join(live, 'tls.key'))
  renameSync(join(live, 'tls.crt.tmp'), join(live, 'tls.crt'))
  const [summary] = await reloaded as [{ fingerprint256: string }]
  t.equal(summary.fingerprint256, fingerprint(b.cert))
  t.equal(await servedFingerprint(gw.url), fingerprint(b.cert), 'a new connection gets the new certificate')
  t.equal((await sendH2(open, '/after')).status, 200, 'the session opened before the rotation still serves')
  t.equal((open.socket as unknown as { getPeerCertificate: () => PeerCertificate }).getPeerCertificate().fingerprint256, fingerprint(a.cert), 'on the certificate it began with')
  t.match(gw.logs.find((l) => l.msg === 'TLS certificate reloaded'), { fingerprint256: fingerprint(b.cert) }, 'the reload is logged')
  const metrics = await gw.metrics.registry.metrics()
  t.match(metrics, /corsgate_tls_certificate_reloads_total\{result="ok"\} 1/, 'and counted')
  t.match(metrics, new RegExp(`corsgate_tls_certificate_expiry_timestamp_seconds ${Date.parse(new X509Certificate(b.cert).validTo) / 1000}`), 'the expiry gauge follows the certificate in use')
})

t.test('a Kubernetes Secret volume update (the ..data symlink swapped) is picked up', async (t) => {
  const a = ca.issue('k8s-a')
  const b = ca.issue('k8s-b')
  const vol = join(ca.dir, 'secret-volume')
  mkdirSync(join(vol, '..v1'), { recursive: true })
  copyFileSync(a.certFile, join(vol, '..v1', 'tls.crt'))
  copyFileSync(a.keyFile, join(vol, '..v1', 'tls.key'))
  symlinkSync('..v1', join(vol, '..data'))
  symlinkSync('..data/tls.crt', join(vol, 'tls.crt'))
  symlinkSync('..data/tls.key', join(vol, 'tls.key'))
  const gw = await startTestGateway({ server: { tls: { certFile: join(vol, 'tls.crt'), keyFile: join(vol, 'tls.key') } }, routes: routes() })
  t.teardown(async () => { await gw.close() })
  t.equal(await servedFingerprint(gw.url), fingerprint(a.cert))

  const reloaded = once(gw.gateway.publicServer.certificates!, 'reloaded')
  // What the kubelet's atomic writer does: a new timestamped directory, then `..data` renamed over.
  mkdirSync(join(vol, '..v2'))
  copyFileSync(b.certFile, join(vol, '..v2', 'tls.crt'))
  copyFileSync(b.keyFile, join(vol, '..v2', 'tls.key'))
  symlinkSync('..v2', join(vol, '..data_tmp'))
  renameSync(join(vol, '..data_tmp'), join(vol, '..data'))
  await reloaded
  t.equal(await servedFingerprint(gw.url), fingerprint(b.cert))
})

t.test('a bad new pair is logged and the old certificate kept', async (t) => {
  const a = ca.issue('bad-a')
  const b = ca.issue('bad-b')
  const live = join(ca.dir, 'live-bad')
  mkdirSync(live)
  copyFileSync(a.certFile, join(live, 'tls.crt'))
  copyFileSync(a.keyFile, join(live, 'tls.key'))
  const gw = await startTestGateway({ server: { tls: { certFile: join(live, 'tls.crt'), keyFile: join(live, 'tls.key') } }, routes: routes() })
  t.teardown(async () => { await gw.close() })
  const certificates = gw.gateway.publicServer.certificates!

  let rejected = once(certificates, 'rejected')
  // b's certificate with a's key: not a pair.
  copyFileSync(b.certFile, join(live, 'tls.crt'))
  await rejected
  t.equal(await servedFingerprint(gw.url), fingerprint(a.cert), 'the old certificate is still served')
  t.equal((await sendHttps(`${gw.url}/still`, ca.ca)).status, 200, 'and new connections are served')
  t.match(gw.logs.find((l) => l.msg === 'new TLS certificate not loaded: keeping the one in use'), { level: 50, error: /key values mismatch|mismatch/i })
  t.match(await gw.metrics.registry.metrics(), /corsgate_tls_certificate_reloads_total\{result="rejected"\} 1/, 'the rejection is counted')

  rejected = once(certificates, 'rejected')
  writeFileSync(join(live, 'tls.key'), '-----BEGIN PRIVATE KEY-----\nhalf-written\n')
  await rejected
  t.equal(await servedFingerprint(gw.url), fingerprint(a.cert), 'a truncated key is refused too')

  // The matching key arrives: the pair loads.
  const reloaded = once(certificates, 'reloaded')
  copyFileSync(b.keyFile, join(live, 'tls.key'))
  await reloaded
  t.equal(await servedFingerprint(gw.url), fingerprint(b.cert), 'once the pair is whole it is used')
})

t.test('missing, unreadable or mismatched files are refused at load, naming the field', async (t) => {
  const a = ca.issue('load-a')
  const b = ca.issue('load-b')
  const missing = join(ca.dir, 'missing.pem')
  let n = 0
  const problems = (tls: Record<string, unknown>): string[] => {
    const file = join(ca.dir, `cfg-${++n}.yaml`)
    writeFileSync(file, testConfigYaml({ server: { tls }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] }))
    try {
      loadConfig(file, {})
      return []
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return err.problems
    }
  }
  t.same(problems({ certFile: a.certFile, keyFile: a.keyFile }), [], 'a readable pair loads')
  t.match(problems({ certFile: missing, keyFile: a.keyFile }), [`server.tls.certFile: cannot read ${missing}: ENOENT (no such file)`])
  t.match(problems({ certFile: a.certFile, keyFile: missing }), [`server.tls.keyFile: cannot read ${missing}: ENOENT (no such file)`])
  t.match(problems({ certFile: a.certFile, keyFile: a.keyFile, caFile: missing }), [/^server\.tls\.caFile: cannot read/])
  t.match(problems({ certFile: a.keyFile, keyFile: a.keyFile }), [/^server\.tls\.certFile: .* holds no PEM certificate/])
  t.match(problems({ certFile: a.certFile, keyFile: a.certFile }), [/^server\.tls\.keyFile: .* holds no PEM private key/])
  t.match(problems({ certFile: a.certFile, keyFile: b.keyFile }), [/^server\.tls\.keyFile: .* do not make a certificate and key pair/])
})

function problemsOf (fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

t.test('the schema: requestCert needs caFile; unknown keys and bad versions are named', async (t) => {
  const yaml = (tls: Record<string, unknown>): string => testConfigYaml({ server: { tls }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] })
  t.match(problemsOf(() => parseConfig(yaml({ certFile: 'c', keyFile: 'k', requestCert: true }), 'x.yaml')), [/^server\.tls\.caFile: is required with requestCert: true/])
  t.match(problemsOf(() => parseConfig(yaml({ certFile: 'c', keyFile: 'k', minVersion: 'TLSv1.1' }), 'x.yaml')), [/^server\.tls\.minVersion: must be one of "TLSv1.2", "TLSv1.3"/])
  t.match(problemsOf(() => parseConfig(yaml({ certFile: 'c' }), 'x.yaml')), [/^server\.tls\.keyFile: is required/])
  t.match(problemsOf(() => parseConfig(yaml({ certFile: 'c', keyFile: 'k', cert: 'x' }), 'x.yaml')), [/^server\.tls: unknown key "cert"/])
  const parsed = parseConfig(yaml({ certFile: 'c', keyFile: 'k' }), 'x.yaml').config.server.tls
  t.match(parsed, { http2: true, minVersion: 'TLSv1.2', requestCert: false, maxConcurrentStreams: 100 }, 'defaults')
})

t.test('corsgate start with a missing certificate file: exit 2 naming the field, no stack trace', async (t) => {
  const a = ca.issue('cli-a')
  const missing = join(ca.dir, 'nope.key')
  const file = join(ca.dir, 'cli.yaml')
  writeFileSync(file, testConfigYaml({ server: { tls: { certFile: a.certFile, keyFile: missing } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] }))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--config', file], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const [code] = await once(child, 'close') as [number | null]
  t.equal(code, 2)
  t.match(stderr, `server.tls.keyFile: cannot read ${missing}: ENOENT (no such file)`)
  t.notMatch(stderr, /\n\s+at /, 'no stack trace')
})

t.test('TLS 1.2 is the floor; minVersion TLSv1.3 refuses TLS 1.2 clients', async (t) => {
  const a = ca.issue('ver-a')
  const gw = await startTestGateway({ server: { tls: { certFile: a.certFile, keyFile: a.keyFile, minVersion: 'TLSv1.3' } }, routes: routes() })
  t.teardown(async () => { await gw.close() })
  const { port } = new URL(gw.url)
  const old = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: ca.ca, servername: 'localhost', maxVersion: 'TLSv1.2' })
  const [err] = await once(old, 'error') as [Error & { code?: string }]
  t.match(err.code, /ERR_SSL|ECONNRESET/, 'a TLS 1.2 client is refused')
  const modern = tlsConnect({ host: '127.0.0.1', port: Number(port), ca: ca.ca, servername: 'localhost' })
  await once(modern, 'secureConnect')
  t.equal(modern.getProtocol(), 'TLSv1.3')
  modern.destroy()
  const floor = await startTestGateway({ server: { tls: { certFile: a.certFile, keyFile: a.keyFile } }, routes: routes() })
  t.teardown(async () => { await floor.close() })
  const tls11 = tlsConnect({ host: '127.0.0.1', port: Number(new URL(floor.url).port), ca: ca.ca, servername: 'localhost', minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })
  const [err11] = await once(tls11, 'error') as [Error & { code?: string }]
  t.ok(err11, 'TLS 1.1 is refused by default')
})

t.test('mutual TLS: requestCert with caFile refuses a client without a certificate', async (t) => {
  const a = ca.issue('mtls-a')
  const client = ca.issueClient('mtls-client')
  const gw = await startTestGateway({ server: { tls: { certFile: a.certFile, keyFile: a.keyFile, caFile: ca.caFile, requestCert: true } }, routes: routes() })
  t.teardown(async () => { await gw.close() })
  // TLS 1.3: the client's handshake ends first, then the server's alert ends the connection.
  await t.rejects(sendHttps(`${gw.url}/mtls`, ca.ca), 'no client certificate: refused')
  const before = upstream.seen.length
  await t.rejects(sendHttps(`${gw.url}/mtls`, ca.ca))
  t.equal(upstream.seen.length, before, 'nothing reached the upstream')
  const session = h2connect(gw.url, { ca: ca.ca, cert: client.cert, key: client.key })
  t.teardown(() => { session.close() })
  t.equal((await sendH2(session, '/mtls')).status, 200, 'with a certificate signed by caFile: served')
})
