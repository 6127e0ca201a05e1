// A 60 s mixed soak through one corsgate: allowed and denied requests, allowed and denied
// preflights, websockets (open, echo, close; and refused upgrades), and a policy reload every
// few seconds from Redis (a real redis-server: SADD/SREM + PUBLISH reload), falling back to
// swapping the live entries in-process when redis-server is missing.
//
//   node --expose-gc --import tsx bench/soak.ts [--seconds 60] [--warmup 10] [--concurrency 16]
//
// Pass: zero unexpected answers (any status other than the one the policy implies, or a
// network error), and the heap after a forced GC at the end within 10% of the heap after a
// forced GC at the end of warm-up. The gateway runs in this process, so the heap includes the
// load generator too; both are steady-state, and a leak in either shows. Exits 1 on a failure.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import WebSocket, { WebSocketServer } from 'ws'
import type { EntryError } from '../src/policy/compile.js'
import { buildSnapshot } from '../src/policy/snapshot.js'
import { startTestGateway } from '../test/helpers/gateway.js'
import { startRedis, type TestRedis } from '../test/helpers/redis-server.js'
import { startUpstream } from '../test/helpers/upstream.js'

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '16' },
    'reload-every': { type: 'string', default: '3' }
  }
})
const SECONDS = Number(args.seconds)
const WARMUP = Number(args.warmup)
const CONCURRENCY = Number(args.concurrency)
const RELOAD_EVERY_MS = Number(args['reload-every']) * 1000

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) {
  console.error('run with node --expose-gc, so memory is compared after a full GC')
  process.exit(2)
}

const ALLOWED = 'https://app.example.com'
const DENIED = 'https://evil.example'
const PREFIX = `soak${process.pid}:`

// ---- world ---------------------------------------------------------------------------------

const upstream = await startUpstream((_req, res) => { res.setHeader('content-type', 'text/plain'); res.end('ok') })
// startUpstream records every request; a soak must not keep them.
upstream.seen.push = () => 0

const wsHttp = createServer((_req, res) => { res.statusCode = 426; res.end() })
const wss = new WebSocketServer({ server: wsHttp })
wss.on('connection', (ws) => { ws.on('message', (data) => ws.send(data)) })
wsHttp.listen(0, '127.0.0.1')
await once(wsHttp, 'listening')
const wsUpstream = `http://127.0.0.1:${(wsHttp.address() as AddressInfo).port}`

let redis: TestRedis | undefined
try {
  redis = await startRedis()
} catch (err) {
  console.error(`redis-server unavailable (${(err as Error).message}); reloads swap the live entries in-process`)
}

const gw = await startTestGateway({
  log: { level: 'warn' },
  policies: { default: { origins: [ALLOWED], maxAge: 600 } },
  routes: [
    { path: '/ws/', upstream: wsUpstream, websocket: true },
    { path: '/', upstream: upstream.url }
  ],
  ...(redis === undefined ? {} : { redis: { url: redis.url, keyPrefix: PREFIX, pollIntervalMs: 5000 } })
})
const wsUrl = `${gw.url.replace(/^http/, 'ws')}/ws/echo`

// ---- load ----------------------------------------------------------------------------------

type Kind = 'allowed' | 'denied' | 'preflight' | 'preflight-denied' | 'websocket' | 'websocket-denied'
const counts: Record<Kind, number> = { allowed: 0, denied: 0, preflight: 0, 'preflight-denied': 0, websocket: 0, 'websocket-denied': 0 }
const unexpected: Array<{ kind: Kind, what: string }> = []
const agent = new Agent({ connections: CONCURRENCY * 2, keepAliveTimeout: 10_000 })
let stopping = false

async function http (kind: Kind, method: string, origin: string, expected: number, headers: Record<string, string> = {}): Promise<void> {
  try {
    const res = await request(`${gw.url}/api/soak`, { method, headers: { origin, ...headers }, dispatcher: agent })
    await res.body.dump()
    if (res.statusCode !== expected) unexpected.push({ kind, what: `status ${res.statusCode}, expected ${expected}` })
  } catch (err) {
    unexpected.push({ kind, what: (err as Error).message })
  }
  counts[kind]++
}

async function websocket (kind: 'websocket' | 'websocket-denied'): Promise<void> {
  const ws = new WebSocket(wsUrl, { origin: kind === 'websocket' ? ALLOWED : DENIED })
  try {
    const outcome = await new Promise<string>((resolve) => {
      ws.once('open', () => { ws.send('ping') })
      ws.once('message', (data) => resolve(`echo:${data.toString()}`))
      ws.once('unexpected-response', (_req, res) => { resolve(`status:${res.statusCode}`); res.resume() })
      ws.once('error', (err) => resolve(`error:${err.message}`))
    })
    const expected = kind === 'websocket' ? 'echo:ping' : 'status:403'
    if (outcome !== expected) unexpected.push({ kind, what: `${outcome}, expected ${expected}` })
  } finally {
    if (ws.readyState === WebSocket.OPEN) {
      ws.close()
      await once(ws, 'close')
    } else {
      ws.terminate()
    }
  }
  counts[kind]++
}

const mix: Array<() => Promise<void>> = [
  async () => { await http('allowed', 'GET', ALLOWED, 200) },
  async () => { await http('allowed', 'POST', ALLOWED, 200, { 'content-type': 'application/json' }) },
  async () => { await http('denied', 'GET', DENIED, 403) },
  async () => { await http('preflight', 'OPTIONS', ALLOWED, 204, { 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type,authorization' }) },
  async () => { await http('preflight-denied', 'OPTIONS', DENIED, 403, { 'access-control-request-method': 'PUT' }) },
  async () => { await websocket('websocket') },
  async () => { await websocket('websocket-denied') }
]

async function worker (seed: number): Promise<void> {
  // eslint-disable-next-line no-unmodified-loop-condition -- the stop timer sets it
  for (let i = seed; !stopping; i++) await mix[i % mix.length]!()
}

// ---- reloads -------------------------------------------------------------------------------

let reloads = 0
async function reload (): Promise<void> {
  reloads++
  // A rotating origin comes and goes; the soak's own origins are never touched.
  const origin = `https://rotating-${reloads % 5}.example.com`
  if (redis !== undefined) {
    const key = `${PREFIX}policy:default:origins`
    if (reloads % 2 === 0) await redis.client.sadd(key, origin)
    else await redis.client.srem(key, `https://rotating-${(reloads - 1) % 5}.example.com`)
    await redis.client.publish(`${PREFIX}reload`, 'default')
  } else {
    // In process: the swap a Redis reload makes, without Redis.
    const live = new Map([['default', { allow: [{ value: origin, source: 'redis', where: 'soak' }], deny: [] }]])
    const errors: EntryError[] = []
    const { config, envOrigins } = gw.store.loaded
    gw.store.swap(buildSnapshot({ config, envOrigins, live, version: gw.store.snapshot.version + 1 }, errors), live, 'redis', errors)
  }
}
const reloadTimer = setInterval(() => { void reload().catch((err: Error) => unexpected.push({ kind: 'allowed', what: `reload: ${err.message}` })) }, RELOAD_EVERY_MS)

// ---- run -----------------------------------------------------------------------------------

function heapAfterGc (): { heapUsed: number, rss: number } {
  gc!()
  gc!()
  const m = process.memoryUsage()
  return { heapUsed: m.heapUsed, rss: m.rss }
}

const started = Date.now()
const workers = Array.from({ length: CONCURRENCY }, async (_, i) => await worker(i))
let warm: { heapUsed: number, rss: number } | undefined
let warmCounts = 0
const samples: string[] = []
await new Promise<void>((resolve) => {
  const tick = setInterval(() => {
    const elapsed = Math.round((Date.now() - started) / 1000)
    const total = Object.values(counts).reduce((a, b) => a + b, 0)
    if (warm === undefined && elapsed >= WARMUP) {
      warm = heapAfterGc()
      warmCounts = total
    }
    if (elapsed % 10 === 0) samples.push(`${elapsed}s: ${total} requests, heap ${(process.memoryUsage().heapUsed / 1048576).toFixed(1)} MiB`)
    if (elapsed >= SECONDS) { clearInterval(tick); resolve() }
  }, 1000)
})
stopping = true
clearInterval(reloadTimer)
await Promise.all(workers)
const end = heapAfterGc()
const total = Object.values(counts).reduce((a, b) => a + b, 0)
const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text()
const reloadLines = metrics.split('\n').filter((l) => l.startsWith('corsgate_policy_reloads_total{'))
const warnings = gw.logs.filter((l) => (l.level as number) >= 40)

await agent.close()
await gw.close()
await upstream.close()
for (const c of wss.clients) c.terminate()
wss.close()
wsHttp.closeAllConnections()
wsHttp.close()
await redis?.close()

const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`
const heapChange = (end.heapUsed - warm!.heapUsed) / warm!.heapUsed
const report = {
  seconds: SECONDS,
  warmupSeconds: WARMUP,
  concurrency: CONCURRENCY,
  reloadSource: redis === undefined ? 'in-process snapshot swap' : 'redis-server (SADD/SREM + PUBLISH)',
  requests: total,
  requestsPerSecond: Math.round(total / SECONDS),
  counts,
  reloadsTriggered: reloads,
  reloadMetric: reloadLines,
  unexpected: unexpected.length,
  unexpectedSample: unexpected.slice(0, 10),
  warnLogLines: warnings.length,
  heapAfterWarmup: mib(warm!.heapUsed),
  heapAtEnd: mib(end.heapUsed),
  heapChange: `${(heapChange * 100).toFixed(1)}%`,
  rssAfterWarmup: mib(warm!.rss),
  rssAtEnd: mib(end.rss),
  requestsAfterWarmup: total - warmCounts,
  samples
}
console.log(JSON.stringify(report, null, 2))
const pass = unexpected.length === 0 && Math.abs(heapChange) <= 0.10
console.log(pass ? 'PASS' : 'FAIL')
process.exit(pass ? 0 : 1)
