// Slow-client attacks against a fragile backend, and what buffering costs (docs/security.md
// "Buffering and backend protection").
//
// Part 1, attacks: Debian's `slowhttptest` runs slowloris (-H), slow body (-B), slow read (-X,
// against a 2 MiB answer) and the range attack (-R) against (a) corsgate on its shipped
// config/default.yaml (only host, ports and the catch-all route's upstream set from the
// environment; log level warn) and (b) nginx on bench/nginx.conf.template (nginx's defaults
// for proxying: request and response buffering on, its default timeouts), each in front of
// the same single-threaded upstream (bench/targets/serial-upstream.mjs: one request at a time,
// as `php artisan serve`). Every attack gets a fresh upstream and proxy. Alongside it a legit
// client (from another loopback address than the attacker's) sends one allowed GET (allowed Origin, answer must carry it back in
// Access-Control-Allow-Origin) every 50 ms for the length of the attack; a request counts as a
// success when its 200 answer is complete within the legit timeout. Figures: legit success
// rate, p50/p99 of the successful ones, connections the upstream had open at once (peak, at
// the upstream), requests holding or waiting for the upstream at once (peak), proxy RSS
// (peak, sampled every 250 ms; nginx: master + workers).
//
// Part 2, buffering: corsgate with the catch-all route's `requestBuffering` and
// `responseBuffering` both on (the default) vs both off, in front of the same upstream serving
// everything at once (SERIAL=0); wrk, 50 connections, alternating rounds; req/s and corsgate's
// CPU per request, ratio on/off.
//
//   npm run build && flock /tmp/corsgate-bench.lock node --import tsx bench/attacks.ts
//
//   BENCH_PARTS=attacks,buffering   which parts (default both)
//   BENCH_ATTACKS=H,B,X,R           which attacks (default all four)
//   BENCH_PROXIES=corsgate,corsgate-fixed,corsgate-1,corsgate-edge,nginx  which proxies
//                                   (default all): corsgate-fixed is the default config with
//                                   the route's adaptiveConcurrency off (the whole pool of 128
//                                   sent at once); corsgate-1 is the default config with the route's
//                                   upstreamConnections at 1, as docs/security.md advises for a
//                                   backend serving one request at a time; corsgate-edge adds
//                                   server.perClient.maxInFlight: 50, its advice for an edge
//   BENCH_ATTACK_S=30               length of each attack and of the legit client's run
//   BENCH_ATTACK_CONNECTIONS=2000   slowhttptest -c
//   BENCH_ATTACK_RATE=200           slowhttptest -r (connections per second)
//   BENCH_LEGIT_EVERY_MS=50         legit client's pace
//   BENCH_LEGIT_TIMEOUT_MS=10000    a legit answer slower than this is a failure
//   BENCH_LEGIT_ADDRESS=127.0.0.2   the legit client's source address (the attacker's is
//                                   127.0.0.1: a real attacker is not at its victims' address)
//   BENCH_ROUNDS=3 BENCH_ROUND_S=5  buffering part: rounds and seconds per round
//   BENCH_NODE=/path/to/node        Node for corsgate and the upstream (default: this one)
//   BENCH_PORT_BASE=18400           first port used (about 40 ports)
//   BENCH_NO_WRITE=1                do not write bench/RESULTS.md
//
// Writes the section "Slow clients and buffering" of bench/RESULTS.md (other sections are left
// as they are) when it ran every attack on both proxies and the buffering part.
// Loopback only; every child runs in its own process group and is killed with it on exit,
// failure or Ctrl-C.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { parse, stringify } from 'yaml'
import { childPids, cpuTicks, median, rssMb, sleep, waitForPort } from './processes.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(ROOT, 'bench')
const env = process.env
const list = (name: string, all: string[]): string[] => (env[name] ?? all.join(',')).split(',').filter((s) => s !== '')
const PARTS = list('BENCH_PARTS', ['attacks', 'buffering'])
const ATTACKS = list('BENCH_ATTACKS', ['H', 'B', 'X', 'R'])
const PROXIES = list('BENCH_PROXIES', ['corsgate', 'corsgate-fixed', 'corsgate-1', 'corsgate-edge', 'nginx'])
const ATTACK_S = Number(env.BENCH_ATTACK_S ?? 30)
const ATTACK_CONNECTIONS = Number(env.BENCH_ATTACK_CONNECTIONS ?? 2000)
const ATTACK_RATE = Number(env.BENCH_ATTACK_RATE ?? 200)
const LEGIT_EVERY_MS = Number(env.BENCH_LEGIT_EVERY_MS ?? 50)
const LEGIT_TIMEOUT_MS = Number(env.BENCH_LEGIT_TIMEOUT_MS ?? 10_000)
const LEGIT_ADDRESS = env.BENCH_LEGIT_ADDRESS ?? '127.0.0.2'
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3)
const ROUND_S = Number(env.BENCH_ROUND_S ?? 5)
const NODE = env.BENCH_NODE ?? process.execPath
const WRITE = env.BENCH_NO_WRITE !== '1'
const SECTION = 'Slow clients and buffering'
const tmp = mkdtempSync(join(tmpdir(), 'corsgate-attacks-'))
let nextPort = Number(env.BENCH_PORT_BASE ?? 18400)
const port = (): number => nextPort++

// ---------------------------------------------------------------------------------------------
// Processes: each in its own process group, so nginx's workers go with their master.

const children = new Set<ChildProcess>()

function launch (name: string, cmd: string, args: string[], extraEnv: Record<string, string> = {}, { ipc = false, stdout = false } = {}): ChildProcess {
  // corsgate reads CORSGATE_* from the environment: only the ones given here apply.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CORSGATE_')))
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...base, ...extraEnv }, detached: true, stdio: ['ignore', stdout ? 'pipe' : 'ignore', 'pipe', ...(ipc ? ['ipc' as const] : [])] })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000) })
  child.on('exit', (code, signal) => {
    children.delete(child)
    if (code !== 0 && code !== null) console.error(`[attacks] ${name} exited ${code} ${signal ?? ''}\n${stderr}`)
  })
  children.add(child)
  return child
}

function killGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  try { process.kill(-child.pid!, signal) } catch { /* gone */ }
}

async function stop (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    killGroup(child, 'SIGKILL')
    return
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  killGroup(child, signal)
  const timer = setTimeout(() => { killGroup(child, 'SIGKILL') }, 10_000)
  await exited
  clearTimeout(timer)
  killGroup(child, 'SIGKILL') // workers left behind by their master
}

interface UpstreamStats { connections: number, peakConnections: number, waiting: number, peakWaiting: number, served: number, bodyBytes: number }

interface Upstream { url: string, port: number, child: ChildProcess, stats: (reset?: boolean) => Promise<UpstreamStats> }

async function startUpstream (serial: boolean): Promise<Upstream> {
  const p = port()
  const child = launch('upstream', NODE, [join(BENCH, 'targets', 'serial-upstream.mjs')], { PORT: String(p), SERIAL: serial ? '1' : '0' }, { ipc: true })
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve())
    child.once('exit', (code) => reject(new Error(`upstream exited ${code}`)))
  })
  const stats = async (reset = false): Promise<UpstreamStats> => await new Promise((resolve) => {
    child.once('message', (m: { stats: UpstreamStats }) => resolve(m.stats))
    child.send(reset ? 'reset' : 'stats')
  })
  return { url: `http://127.0.0.1:${p}`, port: p, child, stats }
}

/** corsgate as shipped, and with the settings docs/security.md advises for such a backend. */
const CORSGATE_VARIANTS: Record<string, { name: string, server?: Record<string, unknown>, route?: Record<string, unknown> }> = {
  corsgate: { name: 'corsgate' },
  'corsgate-fixed': { name: 'corsgate, adaptiveConcurrency: false', route: { adaptiveConcurrency: false } },
  'corsgate-1': { name: 'corsgate, upstreamConnections: 1', route: { upstreamConnections: 1 } },
  'corsgate-edge': { name: 'corsgate, upstreamConnections: 1, perClient.maxInFlight: 50', route: { upstreamConnections: 1 }, server: { perClient: { maxInFlight: 50 } } }
}

interface Proxy { name: string, url: string, origin: string, pids: () => number[], stop: () => Promise<void> }

/** corsgate on the shipped default config, or that config with settings of the server or of the catch-all route changed. */
async function startCorsgate (name: string, upstream: Upstream, change: { server?: Record<string, unknown>, route?: Record<string, unknown> } = {}): Promise<Proxy> {
  const p = port()
  const admin = port()
  let config = join(ROOT, 'config', 'default.yaml')
  if (change.server !== undefined || change.route !== undefined) {
    const doc = parse(readFileSync(config, 'utf8')) as { server: Record<string, unknown>, routes: Array<Record<string, unknown>> }
    Object.assign(doc.server, change.server)
    Object.assign(doc.routes.find((r) => r.path === '/')!, change.route)
    config = join(tmp, `${name.replace(/[^a-z0-9-]/gi, '_')}.yaml`)
    writeFileSync(config, stringify(doc))
  }
  const child = launch(name, NODE, [join(ROOT, 'dist', 'cli.js'), 'start', '--config', config], {
    CORSGATE_HOST: '127.0.0.1',
    CORSGATE_PORT: String(p),
    CORSGATE_ADMIN_PORT: String(admin),
    CORSGATE_UPSTREAM: upstream.url,
    CORSGATE_LOG_LEVEL: 'warn'
  })
  const url = `http://127.0.0.1:${p}`
  await waitForPort(url, child, name)
  // The shipped default policy allows development origins.
  return { name, url, origin: 'http://localhost:5173', pids: () => [child.pid!], stop: async () => await stop(child) }
}

async function startNginx (upstream: Upstream): Promise<Proxy> {
  const p = port()
  const prefix = mkdtempSync(join(tmp, 'nginx-'))
  writeFileSync(join(prefix, 'whitelist.map'), 'app.example.com 1;\n')
  const conf = readFileSync(join(BENCH, 'nginx.conf.template'), 'utf8')
    .replaceAll('{{WORKERS}}', '1')
    .replaceAll('{{PORT}}', String(p))
    .replaceAll('{{UPSTREAM_PORT}}', String(upstream.port))
    .replaceAll('{{WHITELIST_FILE}}', join(prefix, 'whitelist.map'))
  const file = join(prefix, 'nginx.conf')
  writeFileSync(file, conf)
  const child = launch('nginx', 'nginx', ['-c', file, '-p', prefix, '-g', 'daemon off;'])
  const url = `http://127.0.0.1:${p}`
  await waitForPort(url, child, 'nginx')
  // The template's whitelist takes https origins.
  return { name: 'nginx', url, origin: 'https://app.example.com', pids: () => [child.pid!, ...childPids(child.pid!)], stop: async () => await stop(child, 'SIGQUIT') }
}

// ---------------------------------------------------------------------------------------------
// Part 1: attacks

interface Attack { id: string, name: string, args: (url: string) => string[] }

const common = (): string[] => ['-c', String(ATTACK_CONNECTIONS), '-r', String(ATTACK_RATE), '-l', String(ATTACK_S), '-p', '3']
const ATTACK_LIST: Attack[] = [
  { id: 'H', name: 'slowloris (-H)', args: (url) => ['-H', ...common(), '-i', '10', '-x', '24', '-u', `${url}/`] },
  { id: 'B', name: 'slow body (-B)', args: (url) => ['-B', ...common(), '-i', '10', '-x', '24', '-s', '100000', '-u', `${url}/api/upload`] },
  { id: 'X', name: 'slow read (-X), 2 MiB answer', args: (url) => ['-X', ...common(), '-n', '1', '-w', '1', '-y', '512', '-z', '32', '-k', '1', '-u', `${url}/big`] },
  { id: 'R', name: 'range (-R)', args: (url) => ['-R', ...common(), '-a', '10', '-b', '3000', '-u', `${url}/big`] }
]

interface LegitResult { sent: number, ok: number, p50: number, p99: number, max: number, failures: Record<string, number> }

function quantile (sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
}

/** One allowed GET every LEGIT_EVERY_MS for `seconds`; waits for the last answers. */
async function legitClient (proxy: Proxy, seconds: number): Promise<LegitResult> {
  const agent = new Agent({ keepAliveTimeout: 30_000, localAddress: LEGIT_ADDRESS })
  const latencies: number[] = []
  const failures: Record<string, number> = {}
  const fail = (kind: string): void => { failures[kind] = (failures[kind] ?? 0) + 1 }
  const one = async (): Promise<void> => {
    const t0 = performance.now()
    try {
      const res = await request(`${proxy.url}/api/items?page=1`, {
        dispatcher: agent,
        headers: { origin: proxy.origin },
        headersTimeout: LEGIT_TIMEOUT_MS,
        bodyTimeout: LEGIT_TIMEOUT_MS,
        signal: AbortSignal.timeout(LEGIT_TIMEOUT_MS)
      })
      await res.body.dump({ limit: 1 << 20 })
      const ms = performance.now() - t0
      if (res.statusCode !== 200) return fail(String(res.statusCode))
      if (res.headers['access-control-allow-origin'] !== proxy.origin) return fail('no ACAO')
      if (ms > LEGIT_TIMEOUT_MS) return fail('timeout')
      latencies.push(ms)
    } catch (error) {
      const e = error as Error & { code?: string }
      fail(e.name === 'TimeoutError' || /TIMEOUT/.test(e.code ?? '') ? 'timeout' : (e.code ?? e.name))
    }
  }
  const pending: Array<Promise<void>> = []
  const start = performance.now()
  for (let i = 0; performance.now() - start < seconds * 1000; i++) {
    pending.push(one())
    const next = start + (i + 1) * LEGIT_EVERY_MS
    await sleep(Math.max(0, next - performance.now()))
  }
  await Promise.all(pending)
  await agent.close()
  const sorted = latencies.sort((a, b) => a - b)
  return { sent: pending.length, ok: latencies.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) ?? NaN, failures }
}

interface SlowStats { peakConnected: number, unavailableSeconds: number, exit: string }

/** Runs slowhttptest; its status blocks give the peak of connections it held and its own probe's verdicts. */
async function slowhttptest (args: string[]): Promise<SlowStats> {
  const child = launch('slowhttptest', 'slowhttptest', args, {}, { stdout: true })
  let raw = ''
  child.stdout!.on('data', (c: Buffer) => { raw += c.toString() })
  const killer = setTimeout(() => { killGroup(child, 'SIGKILL') }, (ATTACK_S + 60) * 1000)
  await new Promise<void>((resolve) => child.once('close', () => resolve()))
  clearTimeout(killer)
  // eslint-disable-next-line no-control-regex
  const text = raw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
  const connected = [...text.matchAll(/connected:\s+(\d+)/g)].map((m) => Number(m[1]))
  const unavailable = [...text.matchAll(/service available:\s+(\w+)/g)].filter((m) => m[1] === 'NO').length
  const exit = /Exit status:\s*(.+)/.exec(text)?.[1]?.trim() ?? '?'
  return { peakConnected: Math.max(0, ...connected), unavailableSeconds: unavailable, exit }
}

interface AttackResult {
  attack: string
  proxy: string
  legit: LegitResult
  upstream: UpstreamStats
  peakRssMb: number
  idleRssMb: number
  slow: SlowStats
}

async function runAttack (attack: Attack, proxyName: string): Promise<AttackResult> {
  const upstream = await startUpstream(true)
  let proxy: Proxy | undefined
  try {
    proxy = proxyName === 'nginx' ? await startNginx(upstream) : await startCorsgate(CORSGATE_VARIANTS[proxyName]!.name, upstream, CORSGATE_VARIANTS[proxyName])
    const warm = await legitClient(proxy, 0.5)
    if (warm.ok !== warm.sent) throw new Error(`${proxy.name}: the legit request fails before any attack: ${JSON.stringify(warm.failures)}`)
    const idleRssMb = rssMb(proxy.pids())
    await upstream.stats(true)
    let peakRssMb = idleRssMb
    const p = proxy
    const sampler = setInterval(() => { peakRssMb = Math.max(peakRssMb, rssMb(p.pids())) }, 250)
    const [slow, legit] = await Promise.all([slowhttptest(attack.args(proxy.url)), legitClient(proxy, ATTACK_S)])
    clearInterval(sampler)
    const upstreamStats = await upstream.stats()
    const r: AttackResult = { attack: attack.id, proxy: proxy.name, legit, upstream: upstreamStats, peakRssMb, idleRssMb, slow }
    console.log(`[attacks] ${attack.name} → ${proxy.name}: legit ${legit.ok}/${legit.sent} (${pct(legit)}), p50 ${legit.p50.toFixed(1)} ms, p99 ${legit.p99.toFixed(1)} ms, failures ${JSON.stringify(legit.failures)}; upstream peak conns ${upstreamStats.peakConnections}, peak waiting ${upstreamStats.peakWaiting}, served ${upstreamStats.served}; RSS ${idleRssMb.toFixed(0)} → ${peakRssMb.toFixed(0)} MB; slowhttptest peak connected ${slow.peakConnected}, probe unavailable ${slow.unavailableSeconds} s, exit "${slow.exit}"`)
    return r
  } finally {
    await proxy?.stop()
    await stop(upstream.child)
  }
}

const pct = (l: LegitResult): string => `${(100 * l.ok / l.sent).toFixed(l.ok === l.sent ? 0 : 1)} %`

// ---------------------------------------------------------------------------------------------
// Part 2: buffering on vs off

interface WrkResult { rps: number, p99: number, cpuUs: number, non2xx: number, errors: number }

function toMs (value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim())
  if (m === null) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000
}

async function wrk (url: string, load: Load, seconds: number, origin: string, pids: number[]): Promise<WrkResult> {
  const args = ['-t1', '-c50', `-d${seconds}s`, '--latency', '-s', join(BENCH, 'wrk', 'request.lua'), url]
  const wrkEnv = { ...process.env, BENCH_METHOD: load.method, BENCH_ORIGINS: origin, BENCH_PREFLIGHT: '0', BENCH_BODY_BYTES: String(load.bodyBytes), BENCH_PATH: load.path }
  const ticks0 = cpuTicks(pids)
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('wrk', args, { env: wrkEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.on('data', (c: Buffer) => { text += c.toString() })
    child.stderr.on('data', (c: Buffer) => { text += c.toString() })
    child.on('exit', (code) => code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`)))
  })
  const ticks = cpuTicks(pids) - ticks0
  const total = Number(/(\d+) requests in/.exec(out)?.[1])
  const e = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p99: toMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    cpuUs: total > 0 ? (ticks / 100) * 1e6 / total : NaN,
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
    errors: e === null ? 0 : Number(e[1]) + Number(e[2]) + Number(e[3]) + Number(e[4])
  }
}

interface Load { id: string, title: string, method: 'GET' | 'POST', path: string, bodyBytes: number }

const LOADS: Load[] = [
  { id: 'get', title: 'GET, small JSON answer', method: 'GET', path: '/api/items?page=1', bodyBytes: 0 },
  { id: 'get64k', title: 'GET, 64 KiB answer', method: 'GET', path: '/answer64k', bodyBytes: 0 },
  { id: 'post64k', title: 'POST, 64 KiB body', method: 'POST', path: '/api/upload', bodyBytes: 64 * 1024 }
]

interface BufferingResult { load: string, title: string, on: WrkResult, off: WrkResult, rounds: Record<string, WrkResult[]> }

async function runBuffering (): Promise<BufferingResult[]> {
  const upstream = await startUpstream(false)
  const proxies: Proxy[] = []
  try {
    proxies.push(await startCorsgate('buffering-on', upstream, { route: { requestBuffering: true, responseBuffering: true } }))
    proxies.push(await startCorsgate('buffering-off', upstream, { route: { requestBuffering: false, responseBuffering: false } }))
    const out: BufferingResult[] = []
    for (const load of LOADS) {
      console.log(`\n[attacks] buffering: ${load.title}`)
      const rounds: Record<string, WrkResult[]> = { 'buffering-on': [], 'buffering-off': [] }
      for (const p of proxies) await wrk(p.url, load, 1, p.origin, p.pids()) // warm-up
      for (let r = 0; r < ROUNDS; r++) {
        for (const p of r % 2 === 0 ? proxies : [...proxies].reverse()) {
          const res = await wrk(p.url, load, ROUND_S, p.origin, p.pids())
          rounds[p.name]!.push(res)
          console.log(`  round ${r + 1} ${p.name.padEnd(14)} ${res.rps.toFixed(0).padStart(6)} req/s  p99 ${res.p99.toFixed(2)} ms  cpu ${res.cpuUs.toFixed(0)} µs/req${res.non2xx > 0 ? `  non-2xx ${res.non2xx}` : ''}${res.errors > 0 ? `  socket errors ${res.errors}` : ''}`)
        }
      }
      const med = (rs: WrkResult[]): WrkResult => ({ rps: median(rs.map((x) => x.rps)), p99: median(rs.map((x) => x.p99)), cpuUs: median(rs.map((x) => x.cpuUs)), non2xx: rs.reduce((a, x) => a + x.non2xx, 0), errors: rs.reduce((a, x) => a + x.errors, 0) })
      out.push({ load: load.id, title: load.title, on: med(rounds['buffering-on']!), off: med(rounds['buffering-off']!), rounds })
    }
    return out
  } finally {
    for (const p of proxies) await p.stop()
    await stop(upstream.child)
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function section (attacks: AttackResult[], buffering: BufferingResult[]): string {
  const node = execFileSync(NODE, ['--version']).toString().trim()
  const nginx = spawnSync('nginx', ['-v']).stderr.toString().trim()
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  const lines: string[] = [`## ${SECTION}`, '']
  lines.push(`Date: ${new Date().toISOString().slice(0, 10)}. Node ${node} (corsgate and the upstream), ${nginx.replace('nginx version: ', '')}, slowhttptest 1.8.2, 2 vCPUs shared with other work (load average ${load} at the end), loopback only.`)
  lines.push('Command: `npm run build && flock /tmp/corsgate-bench.lock node --import tsx bench/attacks.ts` (knobs at the top of bench/attacks.ts).', '')
  if (attacks.length > 0) {
    lines.push('### Slow-client attacks in front of a single-threaded upstream', '')
    lines.push(`corsgate on the shipped \`config/default.yaml\` (host, ports and the catch-all route's upstream from the environment, log level warn), the same with the route's \`adaptiveConcurrency: false\` (the whole pool of 128 connections sent at once, as before adaptive concurrency), then with what docs/security.md advises for a backend serving one request at a time (the route's \`upstreamConnections: 1\`) and, on an edge, per-client limits (\`server.perClient.maxInFlight: 50\`); nginx on \`bench/nginx.conf.template\` (its default buffering and timeouts, 1 worker). The upstream (\`bench/targets/serial-upstream.mjs\`) serves one request at a time, as \`php artisan serve\` does. Each attack: ${ATTACK_CONNECTIONS} connections at ${ATTACK_RATE}/s for ${ATTACK_S} s; a legit client (source address ${LEGIT_ADDRESS}; the attacker's is 127.0.0.1) sends an allowed GET with an allowed Origin every ${LEGIT_EVERY_MS} ms throughout, and a success is a complete 200 carrying the Origin back within ${LEGIT_TIMEOUT_MS / 1000} s. Latencies are those of the successful requests. "Upstream connections" is the most the upstream had open at once; "upstream requests" the most holding or waiting for it at once. RSS sampled every 250 ms (nginx: master + worker).`, '')
    lines.push('| attack | proxy | legit success | legit p50 / p99 ms | upstream connections (peak) | upstream requests (peak) | proxy RSS idle → peak MB | attack connections held (peak) | failures |')
    lines.push('|---|---|---:|---:|---:|---:|---:|---:|---|')
    for (const a of attacks) {
      const name = ATTACK_LIST.find((x) => x.id === a.attack)!.name
      const f = Object.entries(a.legit.failures).map(([k, v]) => `${k}: ${v}`).join(', ')
      lines.push(`| ${name} | ${a.proxy} | ${a.legit.ok}/${a.legit.sent} (${pct(a.legit)}) | ${a.legit.p50.toFixed(1)} / ${a.legit.p99.toFixed(1)} | ${a.upstream.peakConnections} | ${a.upstream.peakWaiting} | ${a.idleRssMb.toFixed(0)} → ${a.peakRssMb.toFixed(0)} | ${a.slow.peakConnected} | ${f === '' ? '-' : f} |`)
    }
    lines.push('')
    const goals: string[] = []
    const rate = (a: AttackResult): number => a.legit.ok / a.legit.sent
    for (const id of new Set(attacks.map((a) => a.attack))) {
      const n = attacks.find((a) => a.attack === id && a.proxy === 'nginx')
      const parts: string[] = []
      for (const c of attacks.filter((a) => a.attack === id && a.proxy.startsWith('corsgate'))) {
        const vsNginx = n === undefined ? '' : rate(c) >= rate(n) ? ', ≥ nginx' : `, < nginx's ${pct(n.legit)}`
        parts.push(`${c.proxy}: ${pct(c.legit)} ${rate(c) >= 0.99 ? '≥' : '<'} 99 %${vsNginx}`)
      }
      goals.push(`${ATTACK_LIST.find((x) => x.id === id)!.name} — ${parts.join('; ')}`)
    }
    lines.push('Goal: corsgate\'s legit success ≥ 99 % in every attack, and at least nginx\'s.', '')
    for (const g of goals) lines.push(`- ${g}`)
    lines.push('')
  }
  if (buffering.length > 0) {
    lines.push('### Buffering on vs off (proxied throughput)', '')
    lines.push(`corsgate on the default config with the catch-all route's \`requestBuffering\` and \`responseBuffering\` both on (default) or both off, in front of the same upstream serving all requests at once; wrk, 1 thread, 50 keep-alive connections, allowed Origin; ${ROUNDS} alternating rounds of ${ROUND_S} s, medians. CPU is corsgate's own (user + system) per request.`, '')
    lines.push('| load | on: req/s | off: req/s | on/off req/s | on: CPU µs/req | off: CPU µs/req | on/off CPU | on / off p99 ms |')
    lines.push('|---|---:|---:|---:|---:|---:|---:|---:|')
    for (const b of buffering) {
      lines.push(`| ${b.title} | ${b.on.rps.toFixed(0)} | ${b.off.rps.toFixed(0)} | ${(b.on.rps / b.off.rps).toFixed(2)} | ${b.on.cpuUs.toFixed(0)} | ${b.off.cpuUs.toFixed(0)} | ${(b.on.cpuUs / b.off.cpuUs).toFixed(2)} | ${b.on.p99.toFixed(2)} / ${b.off.p99.toFixed(2)} |`)
    }
    lines.push('')
    lines.push('<details><summary>Rounds (req/s, CPU µs/req)</summary>', '')
    lines.push('| load | setting | rounds |', '|---|---|---|')
    for (const b of buffering) {
      for (const [name, rs] of Object.entries(b.rounds)) lines.push(`| ${b.load} | ${name} | ${rs.map((x) => `${x.rps.toFixed(0)} (${x.cpuUs.toFixed(0)})`).join('; ')} |`)
    }
    lines.push('', '</details>', '')
  }
  return lines.join('\n')
}

function writeSection (text: string): void {
  const file = join(BENCH, 'RESULTS.md')
  // Re-read right before writing: other sections belong to other benchmarks.
  const current = readFileSync(file, 'utf8')
  const start = current.indexOf(`## ${SECTION}`)
  let next: string
  if (start < 0) {
    next = `${current.replace(/\n*$/, '\n\n')}${text}`
  } else {
    const rest = current.slice(start + 3)
    const end = rest.search(/^## /m)
    next = current.slice(0, start) + text + (end < 0 ? '' : `\n${rest.slice(end + 0)}`)
  }
  writeFileSync(file, next)
  console.log(`[attacks] wrote "${SECTION}" in ${file}`)
}

// ---------------------------------------------------------------------------------------------

async function main (): Promise<void> {
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: run `npm run build` first')
  const attacks: AttackResult[] = []
  if (PARTS.includes('attacks')) {
    for (const attack of ATTACK_LIST.filter((a) => ATTACKS.includes(a.id))) {
      for (const proxy of PROXIES) attacks.push(await runAttack(attack, proxy))
    }
  }
  const buffering = PARTS.includes('buffering') ? await runBuffering() : []
  const text = section(attacks, buffering)
  console.log(`\n${text}`)
  const complete = ATTACKS.length === ATTACK_LIST.length && PROXIES.length === Object.keys(CORSGATE_VARIANTS).length + 1 && PARTS.length === 2
  if (WRITE && complete) writeSection(text)
  else writeFileSync(join(tmpdir(), 'corsgate-attacks.md'), text)
}

function cleanupSync (): void {
  for (const c of children) killGroup(c, 'SIGKILL')
  rmSync(tmp, { recursive: true, force: true })
}

process.on('exit', cleanupSync)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    cleanupSync()
    process.exit(130)
  })
}
try {
  await main()
} finally {
  await Promise.all([...children].map(async (c) => await stop(c, 'SIGKILL')))
}
