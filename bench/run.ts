// `npm run bench`: corsgate side by side with what users would pick instead (issue 6).
//
// Every target runs in its own process on loopback; load comes from `wrk` in another process
// (autocannon saturates a core near 75k req/s here). Targets are measured in the same run,
// one after another, in alternating rounds (order reversed every other round), and every
// figure is a median over rounds and a RATIO against a baseline measured in that same run:
// the machine is shared, so absolute numbers drift and ratios do not.
//
//   npm run bench                 full run (~7 min): 3 rounds × 5 s per target and scenario
//   BENCH_QUICK=1 npm run bench   quick run (~2.5 min): 2 rounds × 2 s
//   BENCH_ONLY=preflight,get      only those scenarios (ids below); BENCH_NO_WRITE=1 skips RESULTS.md
//   BENCH_PORT_BASE=18200         first port of the range used (about 30 ports)
//   BENCH_PROF_DIR=/tmp/prof      run every corsgate under `node --cpu-prof` (then bench/profile-summary.mjs)
//
// Writes the section "HTTP throughput and latency" of bench/RESULTS.md (other sections are
// left as they are) and the raw figures to bench/results-http.json (quick or partial runs:
// $TMPDIR/corsgate-results-http.json, and RESULTS.md is only written by a run of every scenario).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, freemem, totalmem, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { stringify } from 'yaml'
import { makeWhitelist, nginxHostnamesMap, type Whitelist } from './whitelist.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(ROOT, 'bench')
const QUICK = process.env.BENCH_QUICK === '1'
const ROUNDS = QUICK ? 2 : 3
const DURATION_S = QUICK ? 2 : 5
const HALF_LOAD_S = QUICK ? 3 : 5
const CONNECTIONS = 50
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').filter((s) => s !== '')
const PORT_BASE = Number(process.env.BENCH_PORT_BASE ?? 18200)
const WRITE = process.env.BENCH_NO_WRITE !== '1'
const tmp = mkdtempSync(join(tmpdir(), 'corsgate-bench-'))

// ---------------------------------------------------------------------------------------------
// Processes

interface Target {
  name: string
  url: string
  pids: () => number[]
  stop: () => Promise<void>
  /** VmRSS in MB right after start, before any load. */
  idleRssMb?: number
}

const children = new Set<ChildProcess>()
let nextPort = PORT_BASE
const port = (): number => nextPort++

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function waitForPort (url: string, child: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode} before listening`)
    try {
      const res = await request(url, { method: 'HEAD', headersTimeout: 1000 })
      await res.body.dump()
      return
    } catch {
      await sleep(100)
    }
  }
  throw new Error(`${name} did not listen on ${url} within 60 s`)
}

function launch (name: string, cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000) })
  child.on('exit', (code, signal) => {
    children.delete(child)
    if (code !== 0 && code !== null && !stopping.has(child)) console.error(`[bench] ${name} exited ${code} ${signal ?? ''}\n${stderr}`)
  })
  children.add(child)
  return child
}

const stopping = new Set<ChildProcess>()
async function stopChild (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  stopping.add(child)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(timer)
}

function childPids (pid: number): number[] {
  const out: number[] = []
  try {
    for (const tid of execFileSync('ls', [`/proc/${pid}/task`]).toString().split('\n').filter(Boolean)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim()
      if (list !== '') out.push(...list.split(' ').map(Number))
    }
  } catch { /* gone */ }
  return out
}

function rssMb (pids: number[]): number {
  let kb = 0
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
      if (m !== null) kb += Number(m[1])
    } catch { /* gone */ }
  }
  return Math.round(kb / 102.4) / 10
}

async function startNode (name: string, script: string, env: Record<string, string>): Promise<Target> {
  const p = port()
  const child = launch(name, process.execPath, [join(BENCH, 'targets', script)], { PORT: String(p), ...env })
  const url = `http://127.0.0.1:${p}`
  await waitForPort(url, child, name)
  return { name, url, pids: () => [child.pid!], stop: async () => await stopChild(child) }
}

interface CorsgateOptions { list: Whitelist, upstream: string, workers?: number }

async function startCorsgate (name: string, { list, upstream, workers }: CorsgateOptions): Promise<Target> {
  const p = port()
  const admin = port()
  // Worker i listens for admin on admin + i (src/workers.ts): keep those ports free.
  for (let i = 1; i < (workers ?? 1); i++) port()
  const file = join(tmp, `${name}.yaml`)
  writeFileSync(file, stringify({
    server: { host: '127.0.0.1', port: p, ...(workers === undefined ? {} : { workers }) },
    admin: { host: '127.0.0.1', port: admin },
    log: { level: 'warn' },
    policies: {
      default: {
        origins: list.all,
        methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
        allowHeaders: ['Content-Type', 'Authorization', 'X-Requested-With', 'X-CSRF-TOKEN', 'X-XSRF-TOKEN'],
        credentials: true,
        maxAge: 600
      }
    },
    routes: [{ path: '/', upstream }]
  }))
  const args = [...(process.env.BENCH_PROF_DIR !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF_DIR}`] : []), join(ROOT, 'dist', 'cli.js'), 'start', '--config', file]
  const child = launch(name, process.execPath, args, { CORSGATE_LOG_LEVEL: 'warn' })
  const url = `http://127.0.0.1:${p}`
  await waitForPort(url, child, name)
  return { name, url, pids: () => [child.pid!, ...childPids(child.pid!)], stop: async () => await stopChild(child) }
}

async function startNginx (name: string, { list, upstreamPort, workers }: { list: Whitelist, upstreamPort: number, workers: number }): Promise<Target> {
  const p = port()
  const prefix = mkdtempSync(join(tmp, `${name}-`))
  writeFileSync(join(prefix, 'whitelist.map'), nginxHostnamesMap(list))
  const conf = readFileSync(join(BENCH, 'nginx.conf.template'), 'utf8')
    .replaceAll('{{WORKERS}}', String(workers))
    .replaceAll('{{PORT}}', String(p))
    .replaceAll('{{UPSTREAM_PORT}}', String(upstreamPort))
    .replaceAll('{{WHITELIST_FILE}}', join(prefix, 'whitelist.map'))
  const file = join(prefix, 'nginx.conf')
  writeFileSync(file, conf)
  const child = launch(name, 'nginx', ['-c', file, '-p', prefix, '-g', 'daemon off;'])
  const url = `http://127.0.0.1:${p}`
  await waitForPort(url, child, name)
  // SIGQUIT: graceful stop of master and workers.
  return { name, url, pids: () => [child.pid!, ...childPids(child.pid!)], stop: async () => await stopChild(child, 'SIGQUIT') }
}

// ---------------------------------------------------------------------------------------------
// Load

interface WrkResult {
  rps: number
  p50: number
  p99: number
  non2xx: number
  errors: number
  /** CPU time (user + system) the target's own processes spent per request, in µs: steadier than req/s on a shared machine. */
  cpuUs: number
}

const CLOCK_TICKS = 100 // USER_HZ on Linux

/** utime + stime of the processes, in clock ticks (/proc/PID/stat fields 14 and 15). */
function cpuTicks (pids: number[]): number {
  let ticks = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(fields[11]) + Number(fields[12])
    } catch { /* gone */ }
  }
  return ticks
}

interface Load {
  method?: 'GET' | 'POST' | 'OPTIONS'
  origins: string[]
  preflight?: boolean
  bodyBytes?: number
}

function toMs (value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim())
  if (m === null) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000
}

async function wrk (url: string, load: Load, seconds: number, threads = 1, pids: number[] = []): Promise<WrkResult> {
  const args = [`-t${threads}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', join(BENCH, 'wrk', 'request.lua'), url]
  const env = {
    ...process.env,
    BENCH_METHOD: load.method ?? 'GET',
    BENCH_ORIGINS: load.origins.join(','),
    BENCH_PREFLIGHT: load.preflight === true ? '1' : '0',
    BENCH_BODY_BYTES: String(load.bodyBytes ?? 0)
  }
  const ticks0 = cpuTicks(pids)
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.on('data', (c: Buffer) => { text += c.toString() })
    child.stderr.on('data', (c: Buffer) => { text += c.toString() })
    child.on('exit', (code) => code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`)))
  })
  const ticks = cpuTicks(pids) - ticks0
  const total = Number(/(\d+) requests in/.exec(out)?.[1])
  const cpuUs = pids.length === 0 || !(total > 0) ? NaN : (ticks / CLOCK_TICKS) * 1e6 / total
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  const p50 = toMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '')
  const p99 = toMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '')
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  const e = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  const errors = e === null ? 0 : Number(e[1]) + Number(e[2]) + Number(e[3]) + Number(e[4])
  return { rps, p50, p99, non2xx, errors, cpuUs }
}

interface Probe { status: number, acao: string | undefined, vary: string | undefined }

/** One request checked by hand before measuring, so a target that answers wrongly is caught. */
async function probe (url: string, load: Load): Promise<Probe> {
  const headers: Record<string, string> = {}
  if (load.origins[0] !== undefined && load.origins[0] !== '') headers.origin = load.origins[0]
  if (load.preflight === true) {
    headers['access-control-request-method'] = 'POST'
    headers['access-control-request-headers'] = 'content-type, authorization'
  }
  const body = load.bodyBytes === undefined ? undefined : Buffer.alloc(load.bodyBytes, 'x')
  if (body !== undefined) headers['content-type'] = 'application/octet-stream'
  const res = await request(`${url}/api/items?page=1`, { method: load.method ?? 'GET', headers, body })
  await res.body.dump()
  const h = (name: string): string | undefined => { const v = res.headers[name]; return Array.isArray(v) ? v.join(', ') : v }
  return { status: res.statusCode, acao: h('access-control-allow-origin'), vary: h('vary') }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Scenario {
  id: string
  title: string
  load: Load
  targets: Target[]
  expectStatus: number
  /** Baseline names for the ratios shown. */
  ratios: Array<[string, string]>
  threads?: number
}

interface Measured {
  scenario: string
  title: string
  target: string
  rounds: WrkResult[]
  median: WrkResult
  probe: Probe
}

const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

async function runScenario (s: Scenario): Promise<Measured[]> {
  console.log(`\n[bench] ${s.title}`)
  const probes = new Map<string, Probe>()
  for (const t of s.targets) {
    const p = await probe(t.url, s.load)
    probes.set(t.name, p)
    const mark = p.status === s.expectStatus ? 'ok' : `UNEXPECTED (want ${s.expectStatus})`
    console.log(`  probe ${t.name}: ${p.status} acao=${p.acao ?? '-'} ${mark}`)
    await wrk(t.url, s.load, 1, s.threads) // warm-up: JIT, pools, upstream connections
  }
  const rounds = new Map<string, WrkResult[]>(s.targets.map((t) => [t.name, []]))
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? s.targets : [...s.targets].reverse()
    for (const t of order) {
      const res = await wrk(t.url, s.load, DURATION_S, s.threads, t.pids())
      rounds.get(t.name)!.push(res)
      console.log(`  round ${r + 1} ${t.name.padEnd(16)} ${res.rps.toFixed(0).padStart(7)} req/s  p50 ${res.p50.toFixed(2)} ms  p99 ${res.p99.toFixed(2)} ms  cpu ${res.cpuUs.toFixed(0)} µs/req${res.non2xx > 0 && s.expectStatus < 300 ? `  non-2xx ${res.non2xx}` : ''}${res.errors > 0 ? `  socket errors ${res.errors}` : ''}`)
    }
  }
  return s.targets.map((t) => {
    const rs = rounds.get(t.name)!
    return {
      scenario: s.id,
      title: s.title,
      target: t.name,
      rounds: rs,
      median: { rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)), non2xx: median(rs.map((x) => x.non2xx)), errors: median(rs.map((x) => x.errors)), cpuUs: median(rs.map((x) => x.cpuUs)) },
      probe: probes.get(t.name)!
    }
  })
}

interface HalfLoad { target: string, rate: number, rounds: Array<Record<string, number>>, p50: number, p99: number, achieved: number }

async function fixedRate (url: string, rate: number, seconds: number, origin: string): Promise<Record<string, number>> {
  const out = execFileSync(process.execPath, [join(BENCH, 'fixed-rate.mjs'), `${url}/api/items?page=1`, String(rate), String(seconds), origin]).toString()
  return JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, number>
}

// ---------------------------------------------------------------------------------------------

function machine (): Record<string, string> {
  const sh = (cmd: string, args: string[]): string => { try { return execFileSync(cmd, args).toString().trim() } catch { return '?' } }
  return {
    date: new Date().toISOString(),
    nproc: sh('nproc', []),
    cpu: cpus()[0]?.model ?? '?',
    free: sh('free', ['-h']).split('\n')[1]?.replace(/\s+/g, ' ') ?? `${Math.round(totalmem() / 2 ** 30)} GiB total, ${Math.round(freemem() / 2 ** 30)} GiB free`,
    node: process.version,
    nginx: sh('nginx', ['-v']) || sh('sh', ['-c', 'nginx -v 2>&1']),
    wrk: sh('sh', ['-c', 'wrk -v 2>&1 | head -1']).split(' ').slice(0, 2).join(' '),
    loadavg: sh('cat', ['/proc/loadavg']).split(' ').slice(0, 3).join(' '),
    commit: sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])
  }
}

async function main (): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/cli.js missing: run `npm run build` first')
  const wanted = (id: string): boolean => ONLY.length === 0 || ONLY.includes(id)
  const started = Date.now()
  const info = machine()
  console.log(`[bench] ${QUICK ? 'quick' : 'full'} run: ${ROUNDS} rounds × ${DURATION_S} s, wrk -t1 -c${CONNECTIONS}; ${info.nproc} cores, node ${info.node}, load ${info.loadavg}`)

  const list10 = makeWhitelist(10)
  const upstreamPort = PORT_BASE + 99
  const upstreamChild = launch('upstream', process.execPath, [join(BENCH, 'targets', 'upstream.mjs')], { PORT: String(upstreamPort) })
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`
  await waitForPort(upstreamUrl, upstreamChild, 'upstream')
  const direct: Target = { name: 'direct', url: upstreamUrl, pids: () => [upstreamChild.pid!], stop: async () => await stopChild(upstreamChild) }

  const measure = async <T extends Target>(t: Promise<T>): Promise<T> => {
    const target = await t
    await sleep(500)
    target.idleRssMb = rssMb(target.pids())
    return target
  }
  const corsgate = await measure(startCorsgate('corsgate', { list: list10, upstream: upstreamUrl }))
  const nginx = await measure(startNginx('nginx', { list: list10, upstreamPort, workers: 1 }))
  const express = await measure(startNode('express', 'express-proxy.mjs', {
    UPSTREAM: upstreamUrl,
    EXACT_ORIGINS: JSON.stringify(list10.exact),
    WILDCARD_ORIGINS: JSON.stringify(list10.wildcard)
  }))
  const fastify = await measure(startNode('fastify-204', 'fastify-204.mjs', {}))
  const fastifyPreflight = await measure(startNode('fastify-preflight', 'fastify-preflight.mjs', {}))
  const nodeProxy = await measure(startNode('node-proxy', 'node-proxy.mjs', { UPSTREAM: upstreamUrl }))
  direct.idleRssMb = rssMb(direct.pids())
  const always = [direct, corsgate, nginx, express, fastify, fastifyPreflight, nodeProxy]

  const results: Measured[] = []
  const allowed = list10.allowedProbes
  const scenarios: Scenario[] = [
    { id: 'preflight', title: 'Preflight (OPTIONS, allowed origin)', load: { method: 'OPTIONS', origins: allowed, preflight: true }, targets: [corsgate, nginx, express, fastify, fastifyPreflight], expectStatus: 204, ratios: [['corsgate', 'nginx'], ['corsgate', 'fastify-204'], ['corsgate', 'fastify-preflight'], ['corsgate', 'express']] },
    { id: 'get', title: 'Proxied GET, allowed origin (10-entry whitelist)', load: { origins: allowed }, targets: [direct, corsgate, nginx, express, nodeProxy], expectStatus: 200, ratios: [['corsgate', 'nginx'], ['corsgate', 'express'], ['corsgate', 'direct']] },
    { id: 'post', title: 'Proxied POST of 64 KiB, allowed origin', load: { method: 'POST', origins: allowed, bodyBytes: 64 * 1024 }, targets: [direct, corsgate, nginx, express], expectStatus: 200, ratios: [['corsgate', 'nginx'], ['corsgate', 'express'], ['corsgate', 'direct']] },
    { id: 'denied', title: 'Denied origin (403, upstream not contacted)', load: { origins: list10.deniedProbes }, targets: [corsgate, nginx, express], expectStatus: 403, ratios: [['corsgate', 'nginx'], ['corsgate', 'express']] }
  ]
  for (const s of scenarios) if (wanted(s.id)) results.push(...await runScenario(s))

  // Half of corsgate's peak proxied-GET rate: latency added over direct at the same rate.
  const halfLoad: HalfLoad[] = []
  const peak = results.find((r) => r.scenario === 'get' && r.target === 'corsgate')?.median.rps
  if (peak !== undefined && wanted('half')) {
    const rate = Math.round(peak / 2 / 100) * 100
    console.log(`\n[bench] latency at half of corsgate's peak: ${rate} req/s, fixed-rate client, ${HALF_LOAD_S} s`)
    // node-proxy: how much of the added latency any Node proxy adds here.
    const targets = [direct, corsgate, nginx, nodeProxy]
    for (const t of targets) await fixedRate(t.url, rate, 1, allowed[0]!) // warm-up
    const rounds = new Map<string, Array<Record<string, number>>>(targets.map((t) => [t.name, []]))
    for (let r = 0; r < ROUNDS; r++) {
      for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
        const res = await fixedRate(t.url, rate, HALF_LOAD_S, allowed[0]!)
        rounds.get(t.name)!.push(res)
        console.log(`  round ${r + 1} ${t.name.padEnd(10)} achieved ${res.achieved} req/s  p50 ${res.p50!.toFixed(3)} ms  p99 ${res.p99!.toFixed(3)} ms  non-2xx ${res.non2xx} errors ${res.errors}`)
      }
    }
    for (const t of targets) {
      const rs = rounds.get(t.name)!
      halfLoad.push({ target: t.name, rate, rounds: rs, p50: median(rs.map((x) => x.p50!)), p99: median(rs.map((x) => x.p99!)), achieved: median(rs.map((x) => x.achieved!)) })
    }
  }

  // Whitelist size: the same proxied GET (the same origins: the big lists contain the 10-entry
  // list's entries) against 10, 10k and 100k entries, in the same rounds. Hits spread over a
  // big list are measured by the decide() micro-benchmark below.
  const rssAfterLoad: Record<string, number> = {}
  for (const t of always) rssAfterLoad[t.name] = rssMb(t.pids())
  const idle: Record<string, number> = Object.fromEntries(always.map((t) => [t.name, t.idleRssMb!]))
  for (const size of [10_000, 100_000]) {
    const id = `list${size / 1000}k`
    if (!wanted(id)) continue
    const list = makeWhitelist(size)
    const cg = await measure(startCorsgate(`corsgate-${size / 1000}k`, { list, upstream: upstreamUrl }))
    const ng = await measure(startNginx(`nginx-${size / 1000}k`, { list, upstreamPort, workers: 1 }))
    idle[cg.name] = cg.idleRssMb!
    idle[ng.name] = ng.idleRssMb!
    results.push(...await runScenario({ id, title: `Proxied GET, ${size / 1000}k-entry whitelist (exact and wildcard hits)`, load: { origins: allowed }, targets: [corsgate, cg, ng], expectStatus: 200, ratios: [[cg.name, ng.name], [cg.name, 'corsgate']] }))
    await cg.stop()
    await ng.stop()
  }

  // Every core: corsgate with 2 workers (node:cluster) against nginx with 2 workers.
  if (wanted('workers')) {
    const cg2 = await measure(startCorsgate('corsgate-2w', { list: list10, upstream: upstreamUrl, workers: 2 }).catch((err: Error) => { console.error(`[bench] corsgate with workers: ${err.message}`); return undefined }) as Promise<Target>)
    if (cg2 !== undefined) {
      const ng2 = await measure(startNginx('nginx-2w', { list: list10, upstreamPort, workers: 2 }))
      idle[cg2.name] = cg2.idleRssMb!
      idle[ng2.name] = ng2.idleRssMb!
      results.push(...await runScenario({ id: 'workers-preflight', title: 'Preflight, 2 workers each (wrk -t2)', load: { method: 'OPTIONS', origins: allowed, preflight: true }, targets: [cg2, ng2], expectStatus: 204, ratios: [['corsgate-2w', 'nginx-2w']], threads: 2 }))
      results.push(...await runScenario({ id: 'workers-get', title: 'Proxied GET, 2 workers each (wrk -t2)', load: { origins: allowed }, targets: [cg2, ng2], expectStatus: 200, ratios: [['corsgate-2w', 'nginx-2w']], threads: 2 }))
      await cg2.stop()
      await ng2.stop()
    }
  }

  // The decision alone: decide() with 10 vs 100k origins.
  let decideResult: { sizes: Record<string, DecideSize> } | undefined
  if (wanted('decide')) {
    console.log('\n[bench] decide() micro-benchmark')
    const out = execFileSync(process.execPath, ['--import', 'tsx', join(BENCH, 'decide.ts'), ...(QUICK ? ['--quick'] : [])], { cwd: ROOT }).toString()
    decideResult = JSON.parse(out.trim().split('\n').at(-1)!) as typeof decideResult
    for (const [size, r] of Object.entries(decideResult!.sizes)) console.log(`  ${size.padStart(6)} origins: best ${r.fewBestNs.toFixed(1)} ns / median ${r.fewNs.toFixed(1)} ns (same origins)  best ${r.spreadBestNs.toFixed(1)} / median ${r.spreadNs.toFixed(1)} ns (1024 distinct)`)
  }

  for (const t of [corsgate, nginx, express, fastify, fastifyPreflight, nodeProxy]) await t.stop()
  await direct.stop()

  const report = { info, quick: QUICK, rounds: ROUNDS, durationS: DURATION_S, connections: CONNECTIONS, results, halfLoad, idleRssMb: idle, rssAfterLoadMb: rssAfterLoad, decide: decideResult, scenarios: scenarios.map((s) => ({ id: s.id, ratios: s.ratios })), elapsedS: Math.round((Date.now() - started) / 1000) }
  // The full run's raw figures are kept next to RESULTS.md; a quick or partial run's go to /tmp.
  const rawFile = QUICK || ONLY.length > 0 ? join(tmpdir(), 'corsgate-results-http.json') : join(BENCH, 'results-http.json')
  writeFileSync(rawFile, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`[bench] raw figures in ${rawFile}`)
  const section = renderSection(report)
  console.log(`\n${section}`)
  if (WRITE && ONLY.length === 0) writeSection(section)
  console.log(`[bench] done in ${report.elapsedS} s`)
}

// ---------------------------------------------------------------------------------------------
// Report

interface DecideSize { fewNs: number, spreadNs: number, fewBestNs: number, spreadBestNs: number }

type Report = {
  info: Record<string, string>
  quick: boolean
  rounds: number
  durationS: number
  connections: number
  results: Measured[]
  halfLoad: HalfLoad[]
  idleRssMb: Record<string, number>
  rssAfterLoadMb: Record<string, number>
  decide: { sizes: Record<string, DecideSize> } | undefined
  elapsedS: number
}

const SECTION = 'HTTP throughput and latency'

function ratio (a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return 'n/a'
  return `${(a / b).toFixed(2)}×`
}

export function renderSection (r: Report): string {
  const rps = (scenario: string, target: string): number | undefined => r.results.find((m) => m.scenario === scenario && m.target === target)?.median.rps
  const hl = (t: string): HalfLoad | undefined => r.halfLoad.find((h) => h.target === t)
  const dir = hl('direct')
  const cg = hl('corsgate')
  const added = (k: 'p50' | 'p99'): string => dir === undefined || cg === undefined ? 'n/a' : `${(cg[k] - dir[k]).toFixed(3)} ms`
  const d = r.decide?.sizes
  const lines: string[] = []
  lines.push(`## ${SECTION}`, '')
  lines.push(`Run ${r.info.date} (${r.quick ? 'quick: `BENCH_QUICK=1 npm run bench`' : 'full: `npm run bench`'}), commit ${r.info.commit}, ${r.elapsedS} s.`)
  lines.push(`Machine: ${r.info.nproc} cores (${r.info.cpu}); memory \`${r.info.free}\`; Node ${r.info.node}; ${r.info.nginx}; ${r.info.wrk}; load average at start ${r.info.loadavg} (the machine is shared: read the ratios, not the absolute numbers).`)
  lines.push(`Load: \`wrk -t1 -c${r.connections} -d${r.durationS}s --latency -s bench/wrk/request.lua URL\` from its own process, ${r.rounds} alternating rounds per target (order reversed every other round), median shown. Every target is a separate process on loopback: upstream alone (\`bench/targets/upstream.mjs\`), corsgate (\`node dist/cli.js start\`, one process, log level warn), nginx (\`worker_processes 1\`, upstream keep-alive, the policy as a \`map\`: \`bench/nginx.conf.template\`), express + cors + http-proxy-middleware with a keep-alive agent (\`bench/targets/express-proxy.mjs\`), a bare Fastify route answering 204 (\`bench/targets/fastify-204.mjs\`), the same route answering with corsgate's preflight headers (\`bench/targets/fastify-preflight.mjs\`), and, as a floor for any Node proxy, node:http + an undici Pool piping the response with no CORS at all (\`bench/targets/node-proxy.mjs\`).`)
  lines.push('')
  lines.push('### Ratios against the targets of issue 6', '')
  lines.push('| scenario | figure | target | result |', '|---|---|---|---|')
  lines.push(`| preflight | corsgate / nginx req/s | ≥ 1.0× (stretch 1.2×) | ${ratio(rps('preflight', 'corsgate'), rps('preflight', 'nginx'))} |`)
  lines.push(`| preflight | corsgate / bare Fastify 204 req/s | ≥ 0.95× | ${ratio(rps('preflight', 'corsgate'), rps('preflight', 'fastify-204'))} |`)
  lines.push(`| preflight | corsgate / bare Fastify route sending corsgate's preflight headers req/s | (reference: the cost of the headers alone) | ${ratio(rps('preflight', 'corsgate'), rps('preflight', 'fastify-preflight'))} |`)
  lines.push(`| proxied GET | corsgate / nginx req/s | ≥ 0.8× (stretch 1.0×) | ${ratio(rps('get', 'corsgate'), rps('get', 'nginx'))} |`)
  lines.push(`| proxied GET | corsgate / express req/s | ≥ 4× (stretch 6×) | ${ratio(rps('get', 'corsgate'), rps('get', 'express'))} |`)
  lines.push(`| proxied GET | corsgate / direct req/s | (cost of the hop) | ${ratio(rps('get', 'corsgate'), rps('get', 'direct'))} |`)
  lines.push(`| proxied GET | corsgate / bare node:http + undici proxy req/s | (the Node floor, for reference) | ${ratio(rps('get', 'corsgate'), rps('get', 'node-proxy'))} |`)
  lines.push(`| preflight, 2 workers each | corsgate (server.workers: 2) / nginx (worker_processes 2) req/s | (bench it) | ${ratio(rps('workers-preflight', 'corsgate-2w'), rps('workers-preflight', 'nginx-2w'))} |`)
  lines.push(`| proxied GET, 2 workers each | corsgate (server.workers: 2) / nginx (worker_processes 2) req/s | (bench it) | ${ratio(rps('workers-get', 'corsgate-2w'), rps('workers-get', 'nginx-2w'))} |`)
  lines.push(`| 10k / 100k whitelist, proxied GET | corsgate / nginx req/s | (flat as lists grow) | 10k ${ratio(rps('list10k', 'corsgate-10k'), rps('list10k', 'nginx-10k'))}, 100k ${ratio(rps('list100k', 'corsgate-100k'), rps('list100k', 'nginx-100k'))}; corsgate 100k / 10 entries (same rounds) ${ratio(rps('list100k', 'corsgate-100k'), rps('list100k', 'corsgate'))} |`)
  lines.push(`| latency added at half load (${cg?.rate ?? '?'} req/s) | corsgate − direct | p50 ≤ 0.25 ms, p99 ≤ 1 ms | p50 ${added('p50')}, p99 ${added('p99')} |`)
  lines.push(`| decision cost | decide(), 100k origins / 10 (best round) | ≤ 1.1× | ${ratio(d?.['100000']?.fewBestNs, d?.['10']?.fewBestNs)} same 6 origins; ${ratio(d?.['100000']?.spreadBestNs, d?.['10']?.spreadBestNs)} 1024 distinct origins (medians ${ratio(d?.['100000']?.fewNs, d?.['10']?.fewNs)}, ${ratio(d?.['100000']?.spreadNs, d?.['10']?.spreadNs)}) |`)
  lines.push(`| idle RSS | corsgate VmRSS after start | ≤ 80 MB (stretch 60) | ${r.idleRssMb.corsgate ?? 'n/a'} MB |`)
  lines.push('')
  lines.push('### Throughput and latency (medians)', '')
  lines.push('CPU µs/req is the user + system time of the target\'s own processes (not the upstream\'s, not wrk\'s) per request, from /proc/PID/stat: it is much steadier than req/s when the machine is busy.', '')
  lines.push('| scenario | target | req/s | p50 ms | p99 ms | CPU µs/req | req/s ratios (CPU/req ratio) |', '|---|---|---:|---:|---:|---:|---|')
  const byScenario = new Map<string, Measured[]>()
  for (const m of r.results) byScenario.set(m.scenario, [...(byScenario.get(m.scenario) ?? []), m])
  for (const [id, ms] of byScenario) {
    for (const m of ms) {
      const isCg = m.target.startsWith('corsgate')
      const others = isCg ? ms.filter((o) => o !== m).map((o) => `/${o.target} ${ratio(m.median.rps, o.median.rps)} (${ratio(m.median.cpuUs, o.median.cpuUs)})`).join(', ') : ''
      lines.push(`| ${id} | ${m.target} | ${m.median.rps.toFixed(0)} | ${m.median.p50.toFixed(2)} | ${m.median.p99.toFixed(2)} | ${m.median.cpuUs.toFixed(0)} | ${others} |`)
    }
  }
  lines.push('')
  if (r.halfLoad.length > 0) {
    lines.push(`### Latency at half of corsgate's peak (${r.halfLoad[0]!.rate} req/s, open-loop fixed-rate client \`bench/fixed-rate.mjs\`, 32 keep-alive connections)`, '')
    lines.push('| target | achieved req/s | p50 ms | p99 ms | added over direct p50 / p99 |', '|---|---:|---:|---:|---|')
    for (const h of r.halfLoad) lines.push(`| ${h.target} | ${h.achieved} | ${h.p50.toFixed(3)} | ${h.p99.toFixed(3)} | ${dir === undefined || h === dir ? '' : `${(h.p50 - dir.p50).toFixed(3)} / ${(h.p99 - dir.p99).toFixed(3)} ms`} |`)
    lines.push('')
  }
  if (d !== undefined) {
    lines.push('### Decision cost: `decide()` alone (`bench/decide.ts`, median ns per call)', '')
    lines.push('Same 6 origins: two exact hits, two wildcard hits, two misses, over and over (the algorithm). 1024 distinct origins spread over the list: adds the cache misses of a big hash table. Best round and median of the rounds.', '')
    lines.push('| origins in policy | same 6 origins, best / median ns | 1024 distinct origins, best / median ns |', '|---:|---:|---:|')
    for (const [size, v] of Object.entries(d)) lines.push(`| ${size} | ${v.fewBestNs.toFixed(1)} / ${v.fewNs.toFixed(1)} | ${v.spreadBestNs.toFixed(1)} / ${v.spreadNs.toFixed(1)} |`)
    lines.push('')
  }
  lines.push('### Memory (VmRSS, MB; nginx and cluster figures sum master and workers)', '')
  lines.push('| target | idle, after start | after the load scenarios |', '|---|---:|---:|')
  for (const [name, mb] of Object.entries(r.idleRssMb)) lines.push(`| ${name} | ${mb} | ${r.rssAfterLoadMb[name] ?? ''} |`)
  lines.push('')
  lines.push('<details><summary>Raw rounds (req/s, p50 ms, p99 ms) and probes</summary>', '')
  lines.push('| scenario | target | probe status / ACAO | rounds: req/s (p50, p99, CPU µs/req) |', '|---|---|---|---|')
  for (const m of r.results) {
    lines.push(`| ${m.scenario} | ${m.target} | ${m.probe.status} / ${m.probe.acao ?? '-'} | ${m.rounds.map((x) => `${x.rps.toFixed(0)} (${x.p50.toFixed(2)}, ${x.p99.toFixed(2)}, ${x.cpuUs.toFixed(0)})`).join('; ')} |`)
  }
  for (const h of r.halfLoad) lines.push(`| half-load | ${h.target} | | ${h.rounds.map((x) => `${x.achieved} (${x.p50!.toFixed(3)}, ${x.p99!.toFixed(3)})`).join('; ')} |`)
  lines.push('', '</details>', '')
  return lines.join('\n')
}

function writeSection (section: string): void {
  const file = join(BENCH, 'RESULTS.md')
  // Re-read right before writing: other sections belong to other benchmarks.
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n\nEach section is written by its own benchmark; see the command it names.\n\n'
  const start = current.indexOf(`## ${SECTION}`)
  let next: string
  if (start < 0) {
    next = `${current.replace(/\n*$/, '\n\n')}${section}`
  } else {
    const rest = current.slice(start + 3)
    const end = rest.search(/^## /m)
    next = current.slice(0, start) + section + (end < 0 ? '' : `\n${rest.slice(end)}`)
  }
  writeFileSync(file, next)
  console.log(`[bench] wrote "${SECTION}" in ${file}`)
}

async function cleanup (): Promise<void> {
  await Promise.all([...children].map(async (c) => await stopChild(c, 'SIGKILL')))
  rmSync(tmp, { recursive: true, force: true })
}

process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
try {
  await main()
} finally {
  await cleanup()
}
