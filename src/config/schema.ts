// The one source of truth for corsgate's configuration file (SPEC.md "Configuration").
// Types are derived from the schema; every object is strict, so an unknown key is an
// error that names its path instead of a setting silently ignored.
import { z } from 'zod'
import { parseDuration } from './duration.js'

const METHOD = /^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*$/
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/
// `*` is a token character, but in a header list it would be a wildcard, which browsers ignore
// on credentialed requests: the whole-list `allowHeaders: "*"` is the way to say it.
const headerName = z.string().regex(TOKEN, 'must be an HTTP header name')
  .refine((h) => h !== '*', 'a "*" inside the list is not a header name (use allowHeaders: "*" for the whole list)')

const port = z.number().int().min(0).max(65535)
const ms = z.number().int().min(0)

export const policySchema = z.strictObject({
  origins: z.array(z.string()).default([]),
  deny: z.array(z.string()).default([]),
  noOrigin: z.enum(['allow', 'deny']).default('allow'),
  methods: z.array(z.string().regex(METHOD, 'must be an upper-case HTTP method token'))
    .default(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']),
  allowHeaders: z.union([
    z.literal('*'),
    z.array(headerName)
  ]).default(['Content-Type', 'Authorization', 'X-Requested-With', 'X-CSRF-TOKEN', 'X-XSRF-TOKEN']),
  exposeHeaders: z.array(headerName).default([]),
  credentials: z.boolean().default(true),
  maxAge: z.number().int().min(0).optional(),
  privateNetwork: z.boolean().default(false),
  mode: z.enum(['enforce', 'report-only', 'headers-only']).default('enforce'),
  preflightStatus: z.union([z.literal(200), z.literal(204)]).default(204),
  // Remove every Access-Control-* header the upstream sends, so only corsgate's policy speaks.
  stripUpstreamCors: z.boolean().default(true)
})

const upstreamUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
  // Credentials in an upstream URL would be logged and shown by /policies.
  .refine((u) => !/^https?:\/\/[^/]*@/.test(u), 'must not contain credentials ("user:password@")')
  // Requests keep their own path and query (a route's `path` chooses which go where); a path
  // here would be silently ignored, so it is refused.
  .refine((u) => { if (!URL.canParse(u)) return true; const url = new URL(u); return url.pathname === '/' && url.search === '' && url.hash === '' }, 'must be scheme://host[:port] only, without a path or query: requests keep their own path')

export const routeSchema = z.strictObject({
  path: z.string().startsWith('/', 'must start with "/"'),
  host: z.string().min(1).optional(),
  // Exactly one of `upstream` and `upstreams` (checked below, naming the route).
  upstream: upstreamUrl.optional(),
  // Several upstreams: requests spread round robin, Socket.IO sessions sticky (docs/configuration.md "WebSockets and Socket.IO").
  upstreams: z.array(upstreamUrl).min(1).optional(),
  websocket: z.boolean().default(false),
  policy: z.string().default('default'),
  // The `Host` the upstream is sent: the client's (as Envoy, Traefik and HAProxy do; Laravel
  // builds URLs, signed routes and cookies from it) or the upstream URL's own host, for an
  // upstream that routes by name (a virtual host, a cloud service). X-Forwarded-Host is set either way.
  hostHeader: z.enum(['client', 'upstream']).default('client'),
  // Upstream timeouts; an upstream that sends no response headers in time gets 504.
  timeoutMs: ms.default(30_000),
  // An upstream that refuses a connection leaves the rotation for this long, then is tried again
  // (passive health, like Envoy's outlier detection `base_ejection_time`).
  ejectionMs: ms.default(10_000),
  // How Socket.IO sessions find their upstream among `upstreams` (docs/configuration.md "WebSockets and Socket.IO"):
  // `session` spreads round robin and follows the engine.io sid (learnt by this process) or the
  // corsgate_upstream cookie; `client-address` hashes the client's address (nginx `ip_hash`), so
  // every corsgate process and worker agrees without cookies or shared state.
  sticky: z.enum(['session', 'client-address']).default('session'),
  // Backend protection (docs "Hardening"): a request body is received whole before an
  // upstream connection is taken (nginx `proxy_request_buffering on`); turn off for streaming
  // uploads, at the price of a slow client holding an upstream connection while it sends.
  requestBuffering: z.boolean().default(true),
  // The upstream's answer is taken as fast as the upstream sends it, and kept (memory, then a
  // temporary file) for a client that reads slower (nginx `proxy_buffering on`). Streams
  // (Server-Sent Events, long-polls) still pass each chunk on as it comes.
  responseBuffering: z.boolean().default(true),
  // Connections to each of this route's upstreams at most; server.upstreamConnections when unset.
  // Match it to the backend's workers: 1 for `php artisan serve`, pm.max_children for php-fpm.
  upstreamConnections: z.number().int().positive().optional(),
  // Send each upstream about as many requests at once as it serves before they queue in it, found
  // from its latency below upstreamConnections (Envoy's adaptive concurrency), so that a flood
  // waits in corsgate's fair queue rather than in the backend's; false: upstreamConnections.
  adaptiveConcurrency: z.boolean().default(true),
  // Requests waiting for one of those connections at most (Envoy `max_pending_requests`);
  // past it, 503 at once. Time spent waiting counts against timeoutMs.
  maxPending: z.number().int().min(0).default(1024)
})

export const websocketSchema = z.strictObject({
  // A tunnel with no traffic either way for this long is closed with 1001; 0 disables.
  // Socket.IO pings every 25 s, so its sessions never reach the default.
  idleTimeoutMs: ms.default(300_000),
  // Largest message (all fragments, as sent on the wire) either side may send; a larger one
  // closes the websocket with 1009. ws' own default of 100 MiB is far too large for a gateway.
  maxMessageBytes: z.number().int().positive().default(4 * 1024 * 1024),
  // On shutdown: how long a frame in flight may take to finish before the close frame (1001)
  // is written, and how long the peers get to answer it before the sockets are destroyed.
  closeGraceMs: ms.default(2_000)
})

// A Fastify plugin for the public routes (docs "Extending"): a package or a local file, its
// options, and the routes (by path or `host/path` label) it applies to; all routes without.
export const pluginSchema = z.strictObject({
  name: z.string().min(1).optional(),
  path: z.string().min(1).optional(),
  options: z.record(z.string(), z.unknown()).default({}),
  routes: z.array(z.string().min(1)).min(1).optional()
}).refine((p) => (p.name === undefined) !== (p.path === undefined), 'needs exactly one of "name" (an npm package) and "path" (a file)')
// Observed origins (SPEC.md "Observed origins", docs/rolling-out.md).
export const observeSchema = z.strictObject({
  enabled: z.boolean().default(true),
  // Distinct origins kept per policy; past it, new origins are counted in one `other` row.
  maxOrigins: z.number().int().positive().max(1_000_000).default(10_000),
  // How often each replica adds its counts to Redis (no Redis: unused).
  flushIntervalMs: z.number().int().min(100).default(5000),
  // How long counts are kept: the TTL of the hourly buckets in Redis, and the age past which a
  // replica forgets an origin it no longer sees.
  retention: z.string().refine((d) => parseDuration(d) !== undefined, 'must be a duration with a unit (ms, s, m, h, d, w), e.g. 7d, 24h').default('7d')
})

// The admin server's bearer token: read from a file (a mounted Secret) or an environment variable.
export const adminAuthSchema = z.strictObject({
  tokenFile: z.string().min(1).optional(),
  tokenEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
  // Leave /metrics open to scrapers that cannot send a token.
  openMetrics: z.boolean().default(false)
}).refine((a) => (a.tokenFile === undefined) !== (a.tokenEnv === undefined), 'needs exactly one of "tokenFile" and "tokenEnv"')
// The public port's certificate (PEM files, reloaded when they change), the client CA for
// mutual TLS, and HTTP/2 offered by ALPN next to HTTP/1.1.
export const tlsSchema = z.strictObject({
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  caFile: z.string().min(1).optional(),
  // Ask clients for a certificate signed by caFile, and refuse those without one.
  requestCert: z.boolean().default(false),
  http2: z.boolean().default(true),
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  // Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS);
  // Envoy and nginx use 100 and 128.
  maxConcurrentStreams: z.number().int().min(1).max(10_000).default(100),
  // Memory one HTTP/2 connection may hold in nghttp2 (header tables, queued frames), in MB;
  // past it new streams are refused. Node's default.
  maxSessionMemoryMb: z.number().int().min(1).max(1024).default(10)
}).refine((t) => !t.requestCert || t.caFile !== undefined, { path: ['caFile'], message: 'is required with requestCert: true (the CA that signs client certificates)' })

export const configSchema = z.strictObject({
  server: z.strictObject({
    host: z.string().default('0.0.0.0'),
    port: port.default(8080),
    trustProxy: z.boolean().default(false),
    // Server limits, set on purpose (docs/security.md "Limits").
    bodyLimit: z.number().int().positive().default(10 * 1024 * 1024),
    headersTimeoutMs: ms.default(10_000),
    requestTimeoutMs: ms.default(60_000),
    keepAliveTimeoutMs: ms.default(65_000),
    // How often Node checks the header and request timeouts; its default (30 s) would let a
    // slowloris client hold a connection for up to headersTimeoutMs + 30 s.
    connectionsCheckingIntervalMs: z.number().int().positive().default(1_000),
    maxHeaderSize: z.number().int().positive().default(16 * 1024),
    // More request header lines than this → 431 (Envoy's `max_headers_count` default).
    maxHeadersCount: z.number().int().positive().default(100),
    // Open client connections; further ones are closed on accept. 0 = no limit. Envoy's edge
    // example sets 10000 per listener.
    maxConnections: z.number().int().min(0).default(10_000),
    maxRequestsPerSocket: z.number().int().min(0).default(0),
    shutdownGraceMs: ms.default(10_000),
    upstreamCaFile: z.string().optional(),
    upstreamConnections: z.number().int().positive().default(128),
    // Bodies and answers kept in memory up to memoryBytes each, then in a temporary file in
    // tempDir (the OS's when unset); an answer larger than maxFileBytes falls back to flow
    // control (the upstream waits for the client).
    buffering: z.strictObject({
      memoryBytes: z.number().int().min(0).default(64 * 1024),
      maxFileBytes: z.number().int().min(0).default(1024 * 1024 * 1024),
      tempDir: z.string().min(1).optional()
    }).prefault({}),
    // A client that sends its body, or reads the answer, slower than this after graceMs is cut
    // (Kestrel's MinRequestBodyDataRate / MinResponseDataRate: 240 bytes/s after 5 s). 0 disables.
    minDataRate: z.strictObject({
      bytesPerSecond: z.number().int().min(0).default(240),
      graceMs: ms.default(5_000)
    }).prefault({}),
    // Per client address (the first X-Forwarded-For entry behind trustProxy; the peer otherwise):
    // open connections (refused on accept) and requests in flight (429). 0 = no limit.
    perClient: z.strictObject({
      maxConnections: z.number().int().min(0).default(0),
      maxInFlight: z.number().int().min(0).default(0)
    }).prefault({}),
    // Processes serving the public port (node:cluster; admin of worker i on admin.port + i).
    // 1 = a single process, as in a container; see docs/operating.md "Workers".
    workers: z.number().int().min(1).max(256).default(1),
    // TLS on the public port (docs/configuration.md "TLS and HTTP/2"): plain HTTP without it.
    tls: tlsSchema.optional()
  }).refine((s) => s.requestTimeoutMs === 0 || s.headersTimeoutMs <= s.requestTimeoutMs, {
    // Node refuses to start otherwise; say so at load, naming the field.
    path: ['headersTimeoutMs'], message: 'must not exceed server.requestTimeoutMs'
  }).prefault({}),
  admin: z.strictObject({
    host: z.string().default('127.0.0.1'),
    port: port.default(9090),
    // A bearer token for every admin path but /healthz and /readyz (docs/operating.md "The admin page").
    auth: adminAuthSchema.optional()
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info')
  }).prefault({}),
  redis: z.strictObject({
    url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL').optional(),
    keyPrefix: z.string().default('corsgate:'),
    pollIntervalMs: z.number().int().min(100).default(5000),
    required: z.boolean().default(false),
    passwordFile: z.string().optional(),
    tlsCaFile: z.string().optional(),
    sentinels: z.array(z.strictObject({ host: z.string(), port })).min(1).optional(),
    name: z.string().optional(),
    // Database index; a `/N` path in the URL wins.
    db: z.number().int().min(0).optional(),
    // No Redis command may hold up the reload loop longer than this (ms).
    commandTimeoutMs: z.number().int().positive().default(2000),
    connectTimeoutMs: z.number().int().positive().default(5000),
    // Reconnect backoff doubles from 50 ms up to this cap (ms).
    reconnectMaxDelayMs: z.number().int().positive().default(2000),
    // true → corsgate turns keyspace notifications on with CONFIG SET. Off by default:
    // managed Redis often refuses CONFIG, and server settings belong to ops.
    enableKeyspaceEvents: z.boolean().default(false)
  }).refine((r) => r.sentinels === undefined || r.name !== undefined, { path: ['name'], message: 'is required with sentinels (the master group name)' })
    .optional(),
  policies: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'policy names use letters, digits, "_", "-", "."'), policySchema)
    .refine((p) => Object.keys(p).length > 0, 'at least one policy is required'),
  websocket: websocketSchema.prefault({}),
  plugins: z.array(pluginSchema).default([]),
  observe: observeSchema.prefault({}),
  routes: z.array(routeSchema).min(1, 'at least one route is required')
}).superRefine((config, ctx) => {
  config.routes.forEach((route, i) => {
    if ((route.upstream === undefined) === (route.upstreams === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['routes', i], message: `route ${route.host ?? ''}${route.path} needs exactly one of "upstream" and "upstreams"` })
    }
  })
  config.routes.forEach((route, i) => {
    if (!(route.policy in config.policies)) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'policy'], message: `names policy "${route.policy}", which is not defined under policies` })
    }
  })
  const seen = new Set<string>()
  config.routes.forEach((route, i) => {
    const key = `${route.host?.toLowerCase() ?? ''} ${route.path}`
    if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'path'], message: `duplicates an earlier route for ${route.host ?? 'any host'} ${route.path}` })
    seen.add(key)
  })
})

export type Config = z.infer<typeof configSchema>
export type PolicyConfig = z.infer<typeof policySchema>
export type RouteConfig = z.infer<typeof routeSchema>
export type PluginConfig = z.infer<typeof pluginSchema>
export type WebsocketConfig = z.infer<typeof websocketSchema>
export type RedisConfig = NonNullable<Config['redis']>
export type ObserveConfig = z.infer<typeof observeSchema>
export type AdminAuthConfig = z.infer<typeof adminAuthSchema>
export type TlsConfig = z.infer<typeof tlsSchema>
