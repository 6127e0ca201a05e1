// Redis propagation benchmark (issue 3). Loopback only, bounded in count and time.
//
//  1. Propagation: three `corsgate start` processes on one redis-server; 100 edits, each a
//     SADD + PUBLISH; the time until every gateway's admin /explain allows the new origin.
//  2. Compile: 10k and 100k Redis entries, compiled in slices; the longest event-loop stall
//     while it runs (the larger of perf_hooks.monitorEventLoopDelay's max and a setInterval(1)
//     drift monitor), for the compile alone and for a full Redis read + compile + swap;
//     five runs each, median and worst reported.
//
// Run: node --import tsx bench/redis-propagation.ts [--edits 100] [--json] [--only propagation|compile]
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { parseConfig } from '../src/config/load.js'
import type { RawEntry } from '../src/policy/compile.js'
import { buildSnapshot, type LiveEntries } from '../src/policy/snapshot.js'
import { PolicyStore } from '../src/sources/policy-store.js'
import { RedisPolicySource } from '../src/sources/redis.js'
import { buildSnapshotInSlices } from '../src/sources/sliced-build.js'
import { freePort, startRedis, type TestRedis } from '../test/helpers/redis-server.js'

const { values } = parseArgs({ options: { edits: { type: 'string', default: '100' }, json: { type: 'boolean', default: false }, only: { type: 'string' } } })
const EDITS = Math.min(Number(values.edits), 1000)
const EDIT_TIMEOUT_MS = 3000
const CLI = new URL('../src/cli.ts', import.meta.url).pathname

interface Stats { n: number, p50: number, p99: number, max: number, mean: number }
function stats (xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b)
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? NaN, mean: s.reduce((a, b) => a + b, 0) / s.length }
}
const r1 = (x: number): number => Math.round(x * 10) / 10

// ---------------------------------------------------------------- 1. propagation
interface Gateway { proc: ChildProcess, admin: string }

async function startGatewayProcess (configFile: string): Promise<Gateway> {
  const [port, adminPort] = [await freePort(), await freePort()]
  const proc = spawn(process.execPath, ['--import', 'tsx', CLI, 'start', '--config', configFile], {
    env: { ...process.env, CORSGATE_PORT: String(port), CORSGATE_ADMIN_PORT: String(adminPort), CORSGATE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  const admin = `http://127.0.0.1:${adminPort}`
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      const body = await (await fetch(`${admin}/readyz`)).json() as { sources?: { redis?: { state: string, subscribed: boolean } } }
      if (body.sources?.redis?.state === 'fresh' && body.sources.redis.subscribed) break
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error('gateway did not become ready')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { proc, admin }
}

async function allowed (admin: string, origin: string): Promise<boolean> {
  const res = await fetch(`${admin}/explain?origin=${encodeURIComponent(origin)}&path=/`)
  return (await res.json() as { allowed: boolean }).allowed
}

async function propagation (redis: TestRedis): Promise<{ all: Stats, slowestOfThree: Stats, failures: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-bench-'))
  const configFile = join(dir, 'corsgate.yaml')
  writeFileSync(configFile, stringify({
    server: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    redis: { url: redis.url, keyPrefix: 'bench:', pollIntervalMs: 5000 },
    policies: { default: { origins: ['https://app.example.com'] } },
    routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }]
  }))
  const gateways = await Promise.all([1, 2, 3].map(async () => await startGatewayProcess(configFile)))
  const all: number[] = []
  const slowest: number[] = []
  let failures = 0
  try {
    for (let i = 0; i < EDITS; i++) {
      const origin = `https://edit-${i}.bench.example.org`
      const t0 = performance.now()
      await redis.client.sadd('bench:policy:default:origins', origin)
      await redis.client.publish('bench:reload', 'default')
      const times = await Promise.all(gateways.map(async (gw) => {
        for (;;) {
          if (await allowed(gw.admin, origin)) return performance.now() - t0
          if (performance.now() - t0 > EDIT_TIMEOUT_MS) return undefined
        }
      }))
      for (const t of times) if (t === undefined) failures++; else all.push(t)
      const done = times.filter((t): t is number => t !== undefined)
      if (done.length === 3) slowest.push(Math.max(...done))
    }
  } finally {
    for (const gw of gateways) gw.proc.kill('SIGTERM')
    await Promise.all(gateways.map(async (gw) => await new Promise((resolve) => gw.proc.once('exit', resolve))))
  }
  return { all: stats(all), slowestOfThree: stats(slowest), failures }
}

// ---------------------------------------------------------------- 2. compile and stall
interface Stall { ms: number, maxStallMs: number, maxStallCpuMs: number, maxGcMs: number }

/**
 * Runs `work` and reports the longest event-loop stall during it: the larger of
 * monitorEventLoopDelay's max and a setInterval(1) drift monitor. On a busy machine a stall
 * is partly time the OS gave to other processes, so the CPU time this process used during
 * the longest gap is reported too (`maxStallCpuMs`), and the longest GC pause.
 */
async function measureStall (work: () => Promise<unknown>): Promise<Stall> {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  const cpuNow = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
  let last = performance.now()
  let lastCpu = cpuNow()
  let maxGap = 0
  let maxGapCpu = 0
  const timer = setInterval(() => {
    const now = performance.now()
    const cpu = cpuNow()
    if (now - last > maxGap) { maxGap = now - last; maxGapCpu = cpu - lastCpu }
    last = now
    lastCpu = cpu
  }, 1)
  let maxGc = 0
  const gc = new PerformanceObserver((list) => { for (const e of list.getEntries()) maxGc = Math.max(maxGc, e.duration) })
  gc.observe({ entryTypes: ['gc'] })
  await new Promise((resolve) => setTimeout(resolve, 20))
  histogram.enable()
  last = performance.now()
  lastCpu = cpuNow()
  maxGap = 0
  const start = performance.now()
  await work()
  const ms = performance.now() - start
  // Let the monitor see the last slice.
  await new Promise((resolve) => setTimeout(resolve, 5))
  clearInterval(timer)
  histogram.disable()
  gc.disconnect()
  const histMax = histogram.max / 1e6
  return { ms, maxStallMs: Math.max(maxGap - 1, histMax - 1, 0), maxStallCpuMs: maxGapCpu, maxGcMs: maxGc }
}

function liveEntries (n: number): Map<string, LiveEntries> {
  const allow: RawEntry[] = []
  for (let i = 0; i < n; i++) {
    // Mostly exact origins, with some wildcards and any-port entries, as real lists have.
    const value = i % 50 === 0 ? `https://*.tenant-${i}.example.com` : i % 97 === 0 ? `http://dev-${i}.example.net:*` : `https://app-${i}.customer-${i % 1000}.example.com`
    allow.push({ value, source: 'redis', where: 'bench:policy:default:origins' })
  }
  return new Map([['default', { allow, deny: [] }]])
}

const REPEATS = 5
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN

async function compileBench (redis: TestRedis): Promise<Record<string, unknown>> {
  const loaded = parseConfig(stringify({
    policies: { default: { origins: ['https://app.example.com'] } },
    routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }]
  }), 'bench.yaml')
  // Warm-up, so the first size measured does not pay for the JIT.
  await buildSnapshotInSlices({ config: loaded.config, envOrigins: [], live: liveEntries(20_000), version: 1 }, [])
  const out: Record<string, unknown> = {}
  for (const n of [10_000, 100_000]) {
    const live = liveEntries(n)
    // Unsliced, for reference: this whole time would be one stall without slicing.
    const unsliced: number[] = []
    const sliced: Stall[] = []
    for (let r = 0; r < REPEATS; r++) {
      const syncStart = performance.now()
      buildSnapshot({ config: loaded.config, envOrigins: [], live, version: 1 }, [])
      unsliced.push(performance.now() - syncStart)
      sliced.push(await measureStall(async () => await buildSnapshotInSlices({ config: loaded.config, envOrigins: [], live, version: 2 }, [])))
    }

    // End to end: the entries in Redis, read by a RedisPolicySource (sizes, then SCAN pages), compiled in
    // slices and swapped; measured from the reload request to the swap.
    const prefix = `benchc${n}:`
    const key = `${prefix}policy:default:origins`
    const values = live.get('default')!.allow.map((e) => e.value)
    for (let i = 0; i < values.length; i += 10_000) await redis.client.sadd(key, ...values.slice(i, i + 10_000))
    const redisCfg = parseConfig(stringify({
      redis: { url: redis.url, keyPrefix: prefix, pollIntervalMs: 600_000 },
      policies: { default: { origins: ['https://app.example.com'] } },
      routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }]
    }), 'bench.yaml')
    const store = new PolicyStore(redisCfg)
    const source = new RedisPolicySource({ redis: redisCfg.config.redis!, store, logger: pino({ level: 'silent' }) })
    // First load: a cold read and a full compile (every pattern parsed).
    const first = await measureStall(async () => {
      const swapped = new Promise<void>((resolve) => store.once('swap', () => resolve()))
      source.start()
      await swapped
    })
    // Reloads after one edit: only the new entry is parsed (pattern cache); read and matcher build are full.
    const e2e: Stall[] = []
    for (let r = 0; r < REPEATS; r++) {
      await redis.client.sadd(key, `https://one-more-${r}.example.org`)
      e2e.push(await measureStall(async () => {
        const swapped = new Promise<void>((resolve) => store.once('swap', () => resolve()))
        source.requestReload('bench')
        await swapped
      }))
    }
    await source.stop()
    await redis.client.del(key)
    const summary = (xs: Stall[]): Record<string, unknown> => ({
      ms: { median: r1(median(xs.map((x) => x.ms))), max: r1(Math.max(...xs.map((x) => x.ms))) },
      maxStallMs: { median: r1(median(xs.map((x) => x.maxStallMs))), max: r1(Math.max(...xs.map((x) => x.maxStallMs))) },
      cpuInLongestStallMs: { median: r1(median(xs.map((x) => x.maxStallCpuMs))), max: r1(Math.max(...xs.map((x) => x.maxStallCpuMs))) },
      longestGcMs: r1(Math.max(...xs.map((x) => x.maxGcMs)))
    })
    out[`${n / 1000}k`] = {
      unslicedCompileMs: { median: r1(median(unsliced)), max: r1(Math.max(...unsliced)) },
      slicedCompile: summary(sliced),
      redisFirstLoad: summary([first]),
      redisReloadAfterOneEdit: summary(e2e),
      repeats: REPEATS,
      policyEntries: store.snapshot.policies.get('default')!.allow.size
    }
  }
  return out
}

// ---------------------------------------------------------------- main
const overall = setTimeout(() => { console.error('benchmark exceeded 5 minutes; aborting'); process.exit(1) }, 300_000)
overall.unref()
const redis = await startRedis()
try {
  const prop = values.only === 'compile' ? { all: stats([]), slowestOfThree: stats([]), failures: 0 } : await propagation(redis)
  const compile = values.only === 'propagation' ? {} : await compileBench(redis)
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    edits: EDITS,
    propagation: {
      perGatewayMs: { p50: r1(prop.all.p50), p99: r1(prop.all.p99), max: r1(prop.all.max), mean: r1(prop.all.mean), samples: prop.all.n },
      allThreeMs: { p50: r1(prop.slowestOfThree.p50), p99: r1(prop.slowestOfThree.p99), max: r1(prop.slowestOfThree.max) },
      failures: prop.failures
    },
    compile
  }
  console.log(values.json ? JSON.stringify(result) : JSON.stringify(result, null, 2))
} finally {
  await redis.close()
}
