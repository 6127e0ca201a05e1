// A/B of two corsgate builds on the same machine in one run: the bench's proxied GET and
// preflight against an "old" and a "new" checkout, in alternating order (ABBA...), so the
// drift of a shared machine falls on both alike. The figure that counts is CPU time per
// request of each gateway process (utime + stime from /proc/PID/stat, as bench/run.ts reads
// it), compared as a ratio new/old; req/s is shown beside it.
//
//   node --import tsx bench/ab.ts --old DIR --new DIR [--node PATH] [--rounds N] [--seconds S]
//                                 [--warmup S] [--only preflight|get] [--prof-dir DIR] [--json FILE]
//
// DIR is a checkout with `npm run build` done (DIR/dist/cli.js is started). --node is the
// binary for both gateways and the upstream (default: the one running this script).
// --prof-dir runs both gateways under `node --cpu-prof` (summarise the files with
// bench/profile-summary.mjs; profiles are written when the gateways stop at the end), best
// with --only, so that one profile holds one scenario.
// Every process is on loopback on ports the OS picks; wrk (`-t1 -c50`, bench/wrk/request.lua)
// runs in its own process. Results are printed as a table and as a Markdown fragment, and the
// raw rounds written as JSON (--json, default $TMPDIR/corsgate-ab.json).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { request } from 'undici'
import { stringify } from 'yaml'
import { makeWhitelist } from './whitelist.js'

const BENCH = fileURLToPath(new URL('.', import.meta.url))
const CONNECTIONS = 50
const CLOCK_TICKS = 100 // USER_HZ on Linux
/** The origin of the brief; the bench's 10-entry whitelist beside it, as bench/run.ts loads. */
const APP_ORIGIN = 'https://app.example.com'

const { values: opts } = parseArgs({
  options: {
    old: { type: 'string' },
    new: { type: 'string' },
    node: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    'prof-dir': { type: 'string' },
    only: { type: 'string' },
    json: { type: 'string' }
  },
  strict: true
})
if (opts.old === undefined || opts.new === undefined) {
  console.error('usage: node --import tsx bench/ab.ts --old DIR --new DIR [--node PATH] [--rounds N] [--seconds S] [--warmup S] [--only preflight|get] [--prof-dir DIR] [--json FILE]')
  process.exit(2)
}
const NODE = opts.node ?? process.execPath
const ROUNDS = Number(opts.rounds)
const SECONDS = Number(opts.seconds)
const WARMUP_S = Number(opts.warmup)
const PROF_DIR = opts['prof-dir'] === undefined ? undefined : resolve(opts['prof-dir'])
const JSON_FILE = opts.json ?? join(tmpdir(), 'corsgate-ab.json')
for (const [name, n] of [['rounds', ROUNDS], ['seconds', SECONDS], ['warmup', WARMUP_S]] as const) {
  if (!Number.isInteger(n) || n < (name === 'warmup' ? 0 : 1) || n > 600) throw new Error(`--${name} must be a whole number from ${name === 'warmup' ? 0 : 1} to 600`)
}
const tmp = mkdtempSync(join(tmpdir(), 'corsgate-ab-'))

// ---------------------------------------------------------------------------------------------
// Processes

const children = new Set<ChildProcess>()
const stopping = new Set<ChildProcess>()

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A port free on loopback now (the OS picks it; closed again before the target binds it). */
async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

function launch (name: string, args: string[], cwd: string, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(NODE, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000) })
  child.on('exit', (code, signal) => {
    children.delete(child)
    if (!stopping.has(child)) console.error(`[ab] ${name} exited ${code ?? ''} ${signal ?? ''}\n${stderr}`)
  })
  children.add(child)
  return child
}

async function stopChild (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  stopping.add(child)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(timer)
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

interface Target { name: string, dir: string, commit: string, url: string, child: ChildProcess }

async function startCorsgate (name: string, dir: string, upstream: string, origins: string[]): Promise<Target> {
  const cli = join(dir, 'dist', 'cli.js')
  if (!existsSync(cli)) throw new Error(`${cli} missing: run \`npm ci && npm run build\` in ${dir}`)
  const port = await freePort()
  const admin = await freePort()
  // The same policy and log level as bench/run.ts's corsgate; no plugins.
  const file = join(tmp, `${name}.yaml`)
  writeFileSync(file, stringify({
    server: { host: '127.0.0.1', port },
    admin: { host: '127.0.0.1', port: admin },
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
  }))
  const prof = PROF_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(PROF_DIR, name)}`]
  const child = launch(name, [...prof, cli, 'start', '--config', file], dir, { CORSGATE_LOG_LEVEL: 'warn' })
  const url = `http://127.0.0.1:${port}`
  await waitForPort(url, child, name)
  const commit = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD']).toString().trim()
  return { name, dir, commit, url, child }
}

/** utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15). */
function cpuTicks (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

// ---------------------------------------------------------------------------------------------
// Load

interface Load { method: 'GET' | 'OPTIONS', origins: string[], preflight: boolean }
interface Round { rps: number, cpuUs: number, requests: number, p50: number, p99: number, non2xx: number, errors: number }

function toMs (value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim())
  if (m === null) return NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000
}

async function wrk (url: string, load: Load, seconds: number, pid?: number): Promise<Round> {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', join(BENCH, 'wrk', 'request.lua'), url]
  const env = {
    ...process.env,
    BENCH_METHOD: load.method,
    BENCH_ORIGINS: load.origins.join(','),
    BENCH_PREFLIGHT: load.preflight ? '1' : '0',
    BENCH_BODY_BYTES: '0'
  }
  const ticks0 = pid === undefined ? 0 : cpuTicks(pid)
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.on('data', (c: Buffer) => { text += c.toString() })
    child.stderr.on('data', (c: Buffer) => { text += c.toString() })
    child.on('exit', (code) => code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`)))
  })
  const ticks = pid === undefined ? NaN : cpuTicks(pid) - ticks0
  const requests = Number(/(\d+) requests in/.exec(out)?.[1])
  const e = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    cpuUs: requests > 0 ? (ticks / CLOCK_TICKS) * 1e6 / requests : NaN,
    requests,
    p50: toMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99: toMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
    errors: e === null ? 0 : Number(e[1]) + Number(e[2]) + Number(e[3]) + Number(e[4])
  }
}

/** One request by hand before measuring, so a gateway that answers wrongly is caught. */
async function probe (url: string, load: Load): Promise<{ status: number, acao: string | undefined }> {
  const headers: Record<string, string> = { origin: load.origins[0]! }
  if (load.preflight) {
    headers['access-control-request-method'] = 'POST'
    headers['access-control-request-headers'] = 'content-type, authorization'
  }
  const res = await request(`${url}/api/items?page=1`, { method: load.method, headers })
  await res.body.dump()
  const acao = res.headers['access-control-allow-origin']
  return { status: res.statusCode, acao: Array.isArray(acao) ? acao.join(', ') : acao }
}

const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** new/old CPU per request of the two runs of each round. */
function pairRatios (a: Measured, b: Measured): number[] {
  return a.rounds.map((x, i) => b.rounds[i]!.cpuUs / x.cpuUs)
}

interface Scenario { id: string, title: string, load: Load, expectStatus: number }
interface Measured { scenario: string, target: string, commit: string, order: number[], rounds: Round[], rps: number, cpuUs: number, probe: { status: number, acao: string | undefined } }

async function runScenario (s: Scenario, targets: [Target, Target]): Promise<Measured[]> {
  console.log(`\n[ab] ${s.title}`)
  const probes = new Map<string, Awaited<ReturnType<typeof probe>>>()
  for (const t of targets) {
    const p = await probe(t.url, s.load)
    probes.set(t.name, p)
    if (p.status !== s.expectStatus || p.acao !== s.load.origins[0]) throw new Error(`${t.name}: probe answered ${p.status} acao=${p.acao ?? '-'} (want ${s.expectStatus}, ${s.load.origins[0]})`)
    console.log(`  probe ${t.name}: ${p.status} acao=${p.acao}`)
  }
  for (const t of targets) if (WARMUP_S > 0) await wrk(t.url, s.load, WARMUP_S) // JIT, pools, upstream connections
  const rounds = new Map<string, Round[]>(targets.map((t) => [t.name, []]))
  const order = new Map<string, number[]>(targets.map((t) => [t.name, []]))
  let slot = 0
  for (let r = 0; r < ROUNDS; r++) {
    // ABBA ABBA...: each target goes first in every other round.
    for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
      const res = await wrk(t.url, s.load, SECONDS, t.child.pid!)
      rounds.get(t.name)!.push(res)
      order.get(t.name)!.push(slot++)
      const bad = (res.non2xx > 0 ? `  non-2xx ${res.non2xx}` : '') + (res.errors > 0 ? `  socket errors ${res.errors}` : '')
      console.log(`  round ${r + 1} ${t.name.padEnd(4)} ${res.rps.toFixed(0).padStart(7)} req/s  cpu ${res.cpuUs.toFixed(1).padStart(6)} µs/req  p50 ${res.p50.toFixed(2)} ms  p99 ${res.p99.toFixed(2)} ms${bad}`)
    }
  }
  return targets.map((t) => {
    const rs = rounds.get(t.name)!
    return { scenario: s.id, target: t.name, commit: t.commit, order: order.get(t.name)!, rounds: rs, rps: median(rs.map((x) => x.rps)), cpuUs: median(rs.map((x) => x.cpuUs)), probe: probes.get(t.name)! }
  })
}

// ---------------------------------------------------------------------------------------------

function sh (cmd: string, args: string[]): string {
  try { return execFileSync(cmd, args).toString().trim() } catch { return '?' }
}

async function main (): Promise<void> {
  const nodeVersion = sh(NODE, ['--version'])
  const info = {
    date: new Date().toISOString(),
    cpu: /Model name:\s*(.+)/.exec(sh('lscpu', []))?.[1] ?? cpus()[0]?.model ?? '?',
    nproc: String(cpus().length),
    loadavgStart: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    node: nodeVersion,
    wrk: sh('wrk', ['--version']).split('\n')[0]?.split(' Copyright')[0] ?? '?'
  }
  console.log(`[ab] ${ROUNDS} rounds × ${SECONDS} s per target and scenario, wrk -t1 -c${CONNECTIONS}; node ${nodeVersion} (${NODE}); ${info.nproc} cores, ${info.cpu}; load ${info.loadavgStart}`)

  const list = makeWhitelist(10)
  const origins = [APP_ORIGIN, ...list.all]
  const sent = [APP_ORIGIN, ...list.allowedProbes]

  const upstreamPort = await freePort()
  const upstreamChild = launch('upstream', [join(BENCH, 'targets', 'upstream.mjs')], BENCH, { PORT: String(upstreamPort) })
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`
  await waitForPort(upstreamUrl, upstreamChild, 'upstream')
  const old = await startCorsgate('old', resolve(opts.old!), upstreamUrl, origins)
  const neu = await startCorsgate('new', resolve(opts.new!), upstreamUrl, origins)
  console.log(`[ab] old = ${old.dir} (${old.commit}), new = ${neu.dir} (${neu.commit}), upstream ${upstreamUrl}`)

  const scenarios: Scenario[] = [
    { id: 'preflight', title: 'Preflight (OPTIONS, allowed origin, Access-Control-Request-Method/-Headers)', load: { method: 'OPTIONS', origins: sent, preflight: true }, expectStatus: 204 },
    { id: 'get', title: 'Proxied GET, allowed origin', load: { method: 'GET', origins: sent, preflight: false }, expectStatus: 200 }
  ]
  const only = opts.only?.split(',')
  if (only !== undefined && !only.every((id) => scenarios.some((s) => s.id === id))) throw new Error(`--only takes ${scenarios.map((s) => s.id).join(', ')}`)
  const results: Measured[] = []
  for (const s of scenarios.filter((s) => only === undefined || only.includes(s.id))) results.push(...await runScenario(s, [old, neu]))
  const loadavgEnd = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')

  await stopChild(old.child)
  await stopChild(neu.child)
  await stopChild(upstreamChild)

  const report = { info: { ...info, loadavgEnd }, rounds: ROUNDS, seconds: SECONDS, warmupS: WARMUP_S, connections: CONNECTIONS, origins: sent, old: { dir: old.dir, commit: old.commit }, new: { dir: neu.dir, commit: neu.commit }, results }
  writeFileSync(JSON_FILE, `${JSON.stringify(report, null, 2)}\n`)

  const get = (s: string, t: string): Measured => results.find((m) => m.scenario === s && m.target === t)!
  const ran = scenarios.filter((s) => results.some((m) => m.scenario === s.id))
  const lines: string[] = []
  lines.push(`Node ${nodeVersion}, ${ROUNDS} rounds × ${SECONDS} s, load average ${info.loadavgStart} at start, ${loadavgEnd} at end; old ${old.commit}, new ${neu.commit}.`, '')
  // Two estimates of new/old: the ratio of the medians, and the median of the ratios of the
  // two runs of each round (adjacent in time, so they shared the machine's load most alike).
  lines.push('| scenario | old req/s | new req/s | old CPU µs/req | new CPU µs/req | CPU new/old (medians) | CPU new/old (median of round pairs) | ≤ 1.10 |', '|---|---:|---:|---:|---:|---:|---:|---|')
  for (const s of ran) {
    const a = get(s.id, 'old')
    const b = get(s.id, 'new')
    const r = b.cpuUs / a.cpuUs
    const paired = median(pairRatios(a, b))
    lines.push(`| ${s.id} | ${a.rps.toFixed(0)} | ${b.rps.toFixed(0)} | ${a.cpuUs.toFixed(1)} | ${b.cpuUs.toFixed(1)} | ${r.toFixed(3)} | ${paired.toFixed(3)} | ${r <= 1.10 && paired <= 1.10 ? 'yes' : r <= 1.10 || paired <= 1.10 ? 'borderline' : 'NO'} |`)
  }
  lines.push('', 'Raw rounds, in the order run (req/s / CPU µs/req):', '')
  lines.push('| scenario | target | rounds |', '|---|---|---|')
  for (const m of results) lines.push(`| ${m.scenario} | ${m.target} | ${m.rounds.map((x) => `${x.rps.toFixed(0)} / ${x.cpuUs.toFixed(1)}`).join('; ')} |`)
  lines.push('', '| scenario | CPU new/old per round |', '|---|---|')
  for (const s of ran) lines.push(`| ${s.id} | ${pairRatios(get(s.id, 'old'), get(s.id, 'new')).map((x) => x.toFixed(3)).join(', ')} |`)
  console.log(`\n${lines.join('\n')}\n`)
  console.log(`[ab] raw figures in ${JSON_FILE}${PROF_DIR === undefined ? '' : `; profiles in ${PROF_DIR}/old and ${PROF_DIR}/new`}`)
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
