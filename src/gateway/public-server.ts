// The server of the public port, with its limits set on purpose (docs/security.md "Limits"):
// plain HTTP/1.1 by default; with `server.tls`, TLS with HTTP/2 offered by ALPN (`h2`, then
// `http/1.1` for clients that do not offer it, websocket upgrades among them), or HTTP/1.1
// alone with `http2: false`. Every kind emits the same `request` and `upgrade` events, so the
// pipeline (app.ts) serves them all; HTTP/2 requests come as Node's compatibility
// request/response objects.
import type { Server as HttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createSecureServer, type Http2SecureServer, type Http2Session, type SecureServerOptions } from 'node:http2'
import type { Server as NetServer, Socket } from 'node:net'
import type { Server as TlsServer } from 'node:tls'
import { createServer as createHttpServer } from '../node-http.js'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import { CertificateReloader } from './certificates.js'

// A leeway over `maxHeadersCount` for the pseudo-headers of an HTTP/2 request (`:method`,
// `:scheme`, `:authority`, `:path`), which Node counts as header pairs.
const PSEUDO_HEADERS = 4

/** The public server and what shutdown and the certificate reload need of it. */
export class PublicServer {
  /** Open HTTP/2 sessions: each is sent GOAWAY when the gateway begins to drain. */
  private readonly sessions = new Set<Http2Session>()
  /** Open TLS connections of an HTTP/2 server (which has no `closeAllConnections` of its own). */
  private readonly sockets = new Set<Socket>()

  private constructor (
    readonly server: HttpServer | Http2SecureServer,
    /** Undefined for plain HTTP. */
    readonly certificates: CertificateReloader | undefined,
    readonly http2: boolean
  ) {}

  static create (config: Config, logger: Logger): PublicServer {
    const s = config.server
    const http1 = {
      maxHeaderSize: s.maxHeaderSize,
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      // Node checks both timeouts on this interval (default 30 s), so it bounds how late a
      // slowloris connection is cut.
      connectionsCheckingInterval: s.connectionsCheckingIntervalMs
    }
    const tls = s.tls
    if (tls === undefined) return new PublicServer(limited(createHttpServer(http1), config), undefined, false).track(logger, 0)
    const certificates = new CertificateReloader(tls, logger)
    const secure = {
      ...certificates.options,
      requestCert: tls.requestCert,
      // With requestCert, a client without a certificate signed by caFile is refused.
      rejectUnauthorized: tls.requestCert
    }
    let server: HttpServer | Http2SecureServer
    if (tls.http2) {
      const options: SecureServerOptions & { streamResetBurst?: number, streamResetRate?: number } = {
        ...secure,
        allowHTTP1: true,
        settings: {
          maxConcurrentStreams: tls.maxConcurrentStreams,
          // SETTINGS_MAX_HEADER_LIST_SIZE: a header list past it resets the stream.
          maxHeaderListSize: s.maxHeaderSize,
          enablePush: false
        },
        maxHeaderListPairs: s.maxHeadersCount + PSEUDO_HEADERS + 1,
        maxSessionMemory: tls.maxSessionMemoryMb,
        // Frames that break the protocol, and streams refused (past maxConcurrentStreams or
        // the memory cap), before the session is closed: Node's defaults are 1000 and 100.
        maxSessionInvalidFrames: 100,
        maxSessionRejectedStreams: 100,
        // Rapid reset (CVE-2023-44487): RST_STREAM frames a client may send, as a token bucket
        // of this burst refilled at this rate per second, before the session is closed.
        streamResetBurst: 100,
        streamResetRate: 33
      }
      server = createSecureServer(options)
    } else {
      server = createHttpsServer({ ...secure, ...http1, ALPNProtocols: ['http/1.1'] })
    }
    const publicServer = new PublicServer(limited(server, config), certificates, tls.http2).track(logger, s.keepAliveTimeoutMs)
    certificates.start(server as TlsServer)
    server.once('close', () => { certificates.stop() })
    return publicServer
  }

  private track (logger: Logger, idleMs: number): this {
    const server = this.server
    if (this.certificates !== undefined) {
      server.on('tlsClientError', (err: Error & { code?: string }) => { logger.debug({ error: err.message, code: err.code }, 'TLS handshake failed') })
    }
    if (!this.http2) return this
    const h2 = server as Http2SecureServer
    h2.on('secureConnection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.once('close', () => { this.sockets.delete(socket) })
    })
    h2.on('session', (session: Http2Session) => {
      this.sessions.add(session)
      session.once('close', () => { this.sessions.delete(session) })
      // A session with no frame either way for keepAliveTimeoutMs is ended with GOAWAY.
      if (idleMs > 0) session.setTimeout(idleMs, () => { session.close() })
      session.on('error', (err: Error) => { logger.debug({ error: err.message }, 'HTTP/2 session error') })
    })
    return this
  }

  /**
   * Shutdown has begun: every HTTP/2 session is sent GOAWAY (RFC 9113 §6.8), so its client
   * opens no new stream here while the streams in flight finish.
   */
  goAway (): void {
    for (const session of this.sessions) if (!session.closed) session.close()
  }

  /** The drain deadline has passed: every connection still open is closed. */
  closeAllConnections (): void {
    if (!this.http2) {
      (this.server as HttpServer).closeAllConnections()
      return
    }
    for (const session of this.sessions) session.destroy()
    for (const socket of this.sockets) socket.destroy()
  }
}

/** The HTTP/1.1 limits Node keeps as server properties (also those of HTTP/1.1 on an HTTP/2 port). */
function limited<S extends HttpServer | Http2SecureServer> (server: S, config: Config): S {
  const s = config.server
  const h = server as unknown as HttpServer
  h.keepAliveTimeout = s.keepAliveTimeoutMs
  h.requestTimeout = s.requestTimeoutMs
  h.headersTimeout = s.headersTimeoutMs
  ;(h as HttpServer & { connectionsCheckingInterval: number }).connectionsCheckingInterval = s.connectionsCheckingIntervalMs
  // Read by HTTP/1.1 on an HTTP/2 server, which takes no such option.
  ;(h as HttpServer & { maxHeaderSize: number }).maxHeaderSize = s.maxHeaderSize
  if (s.maxRequestsPerSocket > 0) h.maxRequestsPerSocket = s.maxRequestsPerSocket
  // Node stops reading header lines at maxHeadersCount and drops the rest silently; one more
  // than the limit lets admission see that the limit was passed and answer 431.
  h.maxHeadersCount = s.maxHeadersCount + 1
  if (s.maxConnections > 0) (server as unknown as NetServer).maxConnections = s.maxConnections
  return server
}
