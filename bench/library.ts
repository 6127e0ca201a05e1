// corsgate's Fastify plugin (`corsgate/fastify`) in a Fastify + @fastify/http-proxy gateway,
// against the same gateway with @fastify/cors and a hand-written origin function.
//
//   flock /tmp/corsgate-bench.lock node --import tsx bench/library.ts
//   BENCH_ROUNDS=3 BENCH_SECONDS=5 (defaults)   BENCH_PORT_BASE=18300
//
// Needs the package built (`npm run build`): the plugin target imports dist/, as an app would.
// Every process runs on loopback under the Node binary in BENCH_NODE (default: this one); load
// from `wrk` (bench/wrk/request.lua), 50 connections, one thread. Rounds alternate the order of
// the two targets; figures are medians over rounds, and the ratio is plugin / @fastify/cors,
// measured in the same run. CPU per request is the gateway process's user + system time over
// the requests wrk completed. Prints a Markdown section for bench/RESULTS.md.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(ROOT, 'bench')
const NODE = process.env.BENCH_NODE ?? process.execPath
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = 50
let nextPort = Number(process.env.BENCH_PORT_BASE ?? 18300)

const ORIGIN = 'https://app.example.com'
// A whitelist of a realistic size; the load sends the first one.
const ALLOWED = [ORIGIN, ...Array.from({ length: 99 }, (_, i) => `https://tenant${i}.example.org`)]

interface Target { name: string, url: string, child: ChildProcess }

async function launch (name: string, script: string, env: Record<string, string>): Promise<Target> {
  const port = nextPort++
  const child = spawn(NODE, [join(BENCH, 'targets', script)], { cwd: ROOT, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const [message] = await once(child, 'message') as [unknown]
  if (message !== 'ready') throw new Error(`${name} did not start`)
  return { name, url: `http://127.0.0.1:${port}`, child }
}

async function stop (target: Target): Promise<void> {
  if (target.child.exitCode !== null) return
  const exited = once(target.child, 'exit')
  target.child.kill('SIGTERM')
  await exited
}

const CLOCK_TICKS = 100 // USER_HZ on Linux

function cpuTicks (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

interface Scenario { id: string, title: string, method: 'GET' | 'OPTIONS', preflight: boolean, expect: number }
const SCENARIOS: Scenario[] = [
  { id: 'preflight', title: 'preflight (allowed origin)', method: 'OPTIONS', preflight: true, expect: 204 },
  { id: 'get', title: 'proxied GET (allowed origin)', method: 'GET', preflight: false, expect: 200 }
]

interface Result { rps: number, p99: number, cpuUs: number, non2xx: number }

async function wrk (target: Target, scenario: Scenario): Promise<Result> {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', '-s', join(BENCH, 'wrk', 'request.lua'), target.url]
  const env = { ...process.env, BENCH_METHOD: scenario.method, BENCH_ORIGINS: ORIGIN, BENCH_PREFLIGHT: scenario.preflight ? '1' : '0', BENCH_BODY_BYTES: '0' }
  const pid = target.child.pid!
  const ticks0 = cpuTicks(pid)
  const child = spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  const [code] = await once(child, 'exit') as [number]
  if (code !== 0) throw new Error(`wrk exited ${code}: ${out}`)
  const ticks = cpuTicks(pid) - ticks0
  const total = Number(/(\d+) requests in/.exec(out)?.[1])
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)$/m.exec(out)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p99: p99 === null ? NaN : Number(p99[1]) * (p99[2] === 'us' ? 0.001 : p99[2] === 's' ? 1000 : 1),
    cpuUs: (ticks / CLOCK_TICKS) * 1e6 / total,
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0)
  }
}

/** One request checked before measuring: both targets must give the same CORS answer. */
async function probe (target: Target, scenario: Scenario): Promise<void> {
  const headers: Record<string, string> = { origin: ORIGIN }
  if (scenario.preflight) Object.assign(headers, { 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' })
  const res = await request(`${target.url}/api/items?page=1`, { method: scenario.method, headers })
  await res.body.dump()
  if (res.statusCode !== scenario.expect || res.headers['access-control-allow-origin'] !== ORIGIN) {
    throw new Error(`${target.name} ${scenario.id}: ${res.statusCode}, allow-origin ${String(res.headers['access-control-allow-origin'])}`)
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function main (): Promise<void> {
  const upstream = await launch('upstream', 'upstream.mjs', {})
  const env = { UPSTREAM: upstream.url, BENCH_ALLOWED: JSON.stringify(ALLOWED) }
  const targets = [await launch('corsgate plugin', 'fastify-proxy-corsgate.mjs', env), await launch('@fastify/cors + origin function', 'fastify-proxy-cors.mjs', env)]
  const results = new Map<string, Result[]>()
  try {
    for (const scenario of SCENARIOS) {
      for (const target of targets) {
        await probe(target, scenario)
        await wrk(target, scenario) // warm-up, not counted
      }
      for (let round = 0; round < ROUNDS; round++) {
        for (const target of round % 2 === 0 ? targets : [...targets].reverse()) {
          const r = await wrk(target, scenario)
          if (r.non2xx > 0) throw new Error(`${target.name} ${scenario.id}: ${r.non2xx} non-2xx answers`)
          const key = `${scenario.id}:${target.name}`
          results.set(key, [...(results.get(key) ?? []), r])
        }
      }
    }
  } finally {
    for (const t of [...targets, upstream]) await stop(t)
  }
  const lines = [
    `Node ${(await nodeVersion())}, ${ROUNDS} rounds × ${SECONDS} s per target and scenario, wrk -t1 -c${CONNECTIONS}, medians; ratio = plugin ÷ @fastify/cors in the same run.`,
    '',
    '| scenario | target | req/s | p99 ms | CPU µs/req | ratio (req/s) |',
    '|---|---|---:|---:|---:|---:|'
  ]
  for (const scenario of SCENARIOS) {
    const rps = (name: string): number => median(results.get(`${scenario.id}:${name}`)!.map((r) => r.rps))
    const base = rps(targets[1]!.name)
    for (const target of targets) {
      const rs = results.get(`${scenario.id}:${target.name}`)!
      const ratio = target === targets[0] ? (rps(target.name) / base).toFixed(2) : '1.00'
      lines.push(`| ${scenario.title} | ${target.name} | ${Math.round(median(rs.map((r) => r.rps)))} | ${median(rs.map((r) => r.p99)).toFixed(2)} | ${median(rs.map((r) => r.cpuUs)).toFixed(1)} | ${ratio} |`)
    }
  }
  console.log(lines.join('\n'))
}

async function nodeVersion (): Promise<string> {
  const child = spawn(NODE, ['--version'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  await once(child, 'exit')
  return out.trim()
}

await main()
