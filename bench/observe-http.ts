// HTTP cost of observed origins: corsgate twice (observe on, observe off), same config
// otherwise, in front of one direct upstream; proxied GET and preflight; wrk rounds alternate
// on/off (order reversed every other round), so each on/off pair sees the same machine load.
// Reported per scenario: the median of the per-pair req/s ratios (on ÷ off) and of the CPU µs
// per request of each corsgate process (user + system, from /proc): steadier than req/s on a
// shared machine.
//
//   npm run build && node --import tsx bench/observe-http.ts       6 pairs × 5 s per scenario
//   BENCH_QUICK=1 …                                                 3 pairs × 2 s
//   BENCH_PORT_BASE=18400                                           first of the 5 ports used
//
// Prints one JSON line; the figures go to bench/RESULTS.md "Observed origins" by hand.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { stringify } from 'yaml'
import { makeWhitelist } from './whitelist.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const QUICK = process.env.BENCH_QUICK === '1'
const PAIRS = QUICK ? 3 : 6
const SECONDS = QUICK ? 2 : 5
const CONNECTIONS = 50
let nextPort = Number(process.env.BENCH_PORT_BASE ?? 18400)
const tmp = mkdtempSync(join(tmpdir(), 'corsgate-observe-bench-'))
const children: ChildProcess[] = []

async function waitForPort (url: string, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: exited ${child.exitCode} before listening`)
    try {
      const res = await request(url, { method: 'HEAD', headersTimeout: 1000 })
      await res.body.dump()
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

function launch (args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  children.push(child)
  return child
}

const list = makeWhitelist(1000, 8)
// A realistic mix: several allowed origins and two refused ones (403), each a row of its own.
const ORIGINS = [...list.allowedProbes.slice(0, 6), ...list.deniedProbes.slice(0, 2)]

async function startCorsgate (upstream: string, observe: boolean): Promise<{ url: string, pid: number }> {
  const port = nextPort++
  const file = join(tmp, `corsgate-${observe ? 'on' : 'off'}.yaml`)
  writeFileSync(file, stringify({
    server: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: nextPort++ },
    log: { level: 'warn' },
    observe: { enabled: observe },
    policies: { default: { origins: list.all, maxAge: 600 } },
    routes: [{ path: '/', upstream }]
  }))
  const child = launch([join(ROOT, 'dist', 'cli.js'), 'start', '--config', file])
  const url = `http://127.0.0.1:${port}`
  await waitForPort(url, child)
  return { url, pid: child.pid! }
}

function cpuTicks (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

async function wrk (url: string, pid: number, preflight: boolean): Promise<{ rps: number, cpuUs: number }> {
  const ticks0 = cpuTicks(pid)
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '-s', join(ROOT, 'bench', 'wrk', 'request.lua'), url], {
      env: { ...process.env, BENCH_METHOD: preflight ? 'OPTIONS' : 'GET', BENCH_ORIGINS: ORIGINS.join(','), BENCH_PREFLIGHT: preflight ? '1' : '0' },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let text = ''
    child.stdout.on('data', (c: Buffer) => { text += c.toString() })
    child.stderr.on('data', (c: Buffer) => { text += c.toString() })
    child.on('exit', (code) => code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`)))
  })
  const total = Number(/(\d+) requests in/.exec(out)?.[1])
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1])
  return { rps, cpuUs: ((cpuTicks(pid) - ticks0) / 100) * 1e6 / total }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2 }

try {
  const upstreamPort = nextPort++
  const upstreamChild = launch([join(ROOT, 'bench', 'targets', 'upstream.mjs')], { PORT: String(upstreamPort) })
  const upstream = `http://127.0.0.1:${upstreamPort}`
  await waitForPort(upstream, upstreamChild)
  const on = await startCorsgate(upstream, true)
  const off = await startCorsgate(upstream, false)
  const results: Record<string, unknown> = {}
  for (const [scenario, preflight] of [['get', false], ['preflight', true]] as const) {
    // Warm-up: both JIT-compiled and pools filled before the first measured round.
    await wrk(on.url, on.pid, preflight)
    await wrk(off.url, off.pid, preflight)
    const pairs: Array<{ on: { rps: number, cpuUs: number }, off: { rps: number, cpuUs: number } }> = []
    for (let r = 0; r < PAIRS; r++) {
      const first = r % 2 === 0 ? 'on' : 'off'
      const a = await wrk(first === 'on' ? on.url : off.url, first === 'on' ? on.pid : off.pid, preflight)
      const b = await wrk(first === 'on' ? off.url : on.url, first === 'on' ? off.pid : on.pid, preflight)
      const pair = first === 'on' ? { on: a, off: b } : { on: b, off: a }
      pairs.push(pair)
      console.error(`[observe-http] ${scenario} pair ${r + 1}: on ${pair.on.rps.toFixed(0)} req/s, off ${pair.off.rps.toFixed(0)} req/s`)
    }
    results[scenario] = {
      rpsRatioMedian: +median(pairs.map((p) => p.on.rps / p.off.rps)).toFixed(4),
      cpuUsOn: +median(pairs.map((p) => p.on.cpuUs)).toFixed(2),
      cpuUsOff: +median(pairs.map((p) => p.off.cpuUs)).toFixed(2),
      cpuRatioMedian: +median(pairs.map((p) => p.on.cpuUs / p.off.cpuUs)).toFixed(4),
      pairs: pairs.map((p) => ({ onRps: Math.round(p.on.rps), offRps: Math.round(p.off.rps), onCpuUs: +p.on.cpuUs.toFixed(2), offCpuUs: +p.off.cpuUs.toFixed(2) }))
    }
  }
  console.log(JSON.stringify({ pairs: PAIRS, seconds: SECONDS, connections: CONNECTIONS, origins: ORIGINS.length, results }))
} finally {
  for (const child of children) child.kill('SIGTERM')
}
