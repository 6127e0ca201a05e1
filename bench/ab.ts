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
// binary for both gateways and the upstream (default: the image's Node 24 where .ci/run
// installed it, else the one running this script).
// --prof-dir runs both gateways under `node --cpu-prof` (summarise the files with
// bench/profile-summary.mjs; profiles are written when the gateways stop at the end), best
// with --only, so that one profile holds one scenario.
// Every process is on loopback on ports the OS picks; wrk (`-t1 -c50`, bench/wrk/request.lua)
// runs in its own process. Results are printed as a table and as a Markdown fragment, and the
// raw rounds written as JSON (--json, default $TMPDIR/corsgate-ab.json).
import { execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import { BENCH, benchConfig, benchNodeLines, Children, CONNECTIONS, freePort, median, probe, waitForPort, wrk, type Load, type Probe, type WrkResult } from './processes.js'
import { makeWhitelist } from './whitelist.js'

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
const NODE = opts.node ?? benchNodeLines()[0]!.bin
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

const children = new Children('ab')

interface Target { name: string, dir: string, commit: string, url: string, child: ChildProcess }

async function startCorsgate (name: string, dir: string, upstream: string, origins: string[]): Promise<Target> {
  const cli = join(dir, 'dist', 'cli.js')
  if (!existsSync(cli)) throw new Error(`${cli} missing: run \`npm ci && npm run build\` in ${dir}`)
  const port = await freePort()
  const admin = await freePort()
  // The same policy and log level as bench/run.ts's corsgate; no plugins.
  const file = join(tmp, `${name}.yaml`)
  writeFileSync(file, stringify(benchConfig(origins, upstream, port, admin)))
  const prof = PROF_DIR === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${join(PROF_DIR, name)}`]
  const child = children.launch(name, NODE, [...prof, cli, 'start', '--config', file], dir, { CORSGATE_LOG_LEVEL: 'warn' })
  const url = `http://127.0.0.1:${port}`
  await waitForPort(url, child, name)
  const commit = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD']).toString().trim()
  return { name, dir, commit, url, child }
}

// ---------------------------------------------------------------------------------------------
// Load

type Round = WrkResult

/** new/old CPU per request of the two runs of each round. */
function pairRatios (a: Measured, b: Measured): number[] {
  return a.rounds.map((x, i) => b.rounds[i]!.cpuUs / x.cpuUs)
}

interface Scenario { id: string, title: string, load: Required<Pick<Load, 'method' | 'origins' | 'preflight'>>, expectStatus: number }
interface Measured { scenario: string, target: string, commit: string, order: number[], rounds: Round[], rps: number, cpuUs: number, probe: Probe }

async function runScenario (s: Scenario, targets: [Target, Target]): Promise<Measured[]> {
  console.log(`\n[ab] ${s.title}`)
  const probes = new Map<string, Probe>()
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
      const res = await wrk(t.url, s.load, SECONDS, 1, [t.child.pid!])
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
  const upstreamChild = children.launch('upstream', NODE, [join(BENCH, 'targets', 'upstream.mjs')], BENCH, { PORT: String(upstreamPort) })
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

  await children.stop(old.child)
  await children.stop(neu.child)
  await children.stop(upstreamChild)

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
  await children.killAll()
  rmSync(tmp, { recursive: true, force: true })
}

process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
try {
  await main()
} finally {
  await cleanup()
}
