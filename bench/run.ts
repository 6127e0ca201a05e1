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
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, freemem, totalmem, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { BENCH, benchConfig, benchNodeLines, childPids, Children, CONNECTIONS, median, probe, rssMb, sleep, waitForPort, wrk, type Load, type NodeLine, type Probe, type WrkResult } from './processes.js'
import { workersMode as workersModeOn } from '../src/workers.js'
import { makeWhitelist, nginxHostnamesMap, type Whitelist } from './whitelist.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const QUICK = process.env.BENCH_QUICK === '1'
const ROUNDS = QUICK ? 2 : 3
const DURATION_S = QUICK ? 2 : 5
const HALF_LOAD_S = QUICK ? 3 : 5
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').filter((s) => s !== '')
const PORT_BASE = Number(process.env.BENCH_PORT_BASE ?? 18200)
const WRITE = process.env.BENCH_NO_WRITE !== '1'
const tmp = mkdtempSync(join(tmpdir(), 'corsgate-bench-'))
// Every Node target runs on the main line (the image's Node 24); the other line (the
// machine's Node 20) gets its own copy of each Node target in the preflight and GET rounds.
const LINES = benchNodeLines()
const MAIN = LINES[0]!

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

const children = new Children('bench')
let nextPort = PORT_BASE
const port = (): number => nextPort++

/** A target's name on a Node line: plain on the main line, `name@20` on another. */
const onLine = (name: string, line: NodeLine): string => line === MAIN ? name : `${name}@${line.major}`

async function startNode (name: string, script: string, env: Record<string, string>, line: NodeLine = MAIN): Promise<Target> {
  const p = port()
  const child = children.launch(name, line.bin, [join(BENCH, 'targets', script)], ROOT, { PORT: String(p), ...env })
  const url = `http://127.0.0.1:${p}`
  await waitForPort(url, child, name)
  return { name, url, pids: () => [child.pid!], stop: async () => await children.stop(child) }
}

interface CorsgateOptions { list: Whitelist, upstream: string, workers?: number, line?: NodeLine }

async function startCorsgate (name: string, { list, upstream, workers, line = MAIN }: CorsgateOptions): Promise<Target> {
  const p = port()
  const admin = port()
  // Worker i listens for admin on admin + i (src/workers.ts): keep those ports free.
  for (let i = 1; i < (workers ?? 1); i++) port()
  const file = join(tmp, `${name}.yaml`)
  writeFileSync(file, stringify(benchConfig(list.all, upstream, p, admin, workers === undefined ? {} : { workers })))
  const args = [...(process.env.BENCH_PROF_DIR !== undefined ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF_DIR}`] : []), join(ROOT, 'dist', 'cli.js'), 'start', '--config', file]
  const child = children.launch(name, line.bin, args, ROOT, { CORSGATE_LOG_LEVEL: 'warn' })
  const url = `http://127.0.0.1:${p}`
  await waitForPort(url, child, name)
  return { name, url, pids: () => [child.pid!, ...childPids(child.pid!)], stop: async () => await children.stop(child) }
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
  const child = children.launch(name, 'nginx', ['-c', file, '-p', prefix, '-g', 'daemon off;'], ROOT)
  const url = `http://127.0.0.1:${p}`
  await waitForPort(url, child, name)
  // SIGQUIT: graceful stop of master and workers.
  return { name, url, pids: () => [child.pid!, ...childPids(child.pid!)], stop: async () => await children.stop(child, 'SIGQUIT') }
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
      median: { rps: median(rs.map((x) => x.rps)), requests: median(rs.map((x) => x.requests)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)), non2xx: median(rs.map((x) => x.non2xx)), errors: median(rs.map((x) => x.errors)), cpuUs: median(rs.map((x) => x.cpuUs)) },
      probe: probes.get(t.name)!
    }
  })
}

interface HalfLoad { target: string, rate: number, rounds: Array<Record<string, number>>, p50: number, p99: number, achieved: number }

async function fixedRate (url: string, rate: number, seconds: number, origin: string): Promise<Record<string, number>> {
  const out = execFileSync(MAIN.bin, [join(BENCH, 'fixed-rate.mjs'), `${url}/api/items?page=1`, String(rate), String(seconds), origin]).toString()
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
    node: LINES.map((l) => l.version).join(', '),
    nodeMain: MAIN.version,
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
  console.log(`[bench] ${QUICK ? 'quick' : 'full'} run: ${ROUNDS} rounds × ${DURATION_S} s, wrk -t1 -c${CONNECTIONS}; ${info.nproc} cores, Node targets on ${LINES.map((l) => `${l.version} (${l.bin})`).join(' and ')}, load ${info.loadavg}`)

  const list10 = makeWhitelist(10)
  const upstreamPort = PORT_BASE + 99
  const upstreamChild = children.launch('upstream', MAIN.bin, [join(BENCH, 'targets', 'upstream.mjs')], ROOT, { PORT: String(upstreamPort) })
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`
  await waitForPort(upstreamUrl, upstreamChild, 'upstream')
  const direct: Target = { name: 'direct', url: upstreamUrl, pids: () => [upstreamChild.pid!], stop: async () => await children.stop(upstreamChild) }

  const measure = async <T extends Target>(t: Promise<T>): Promise<T> => {
    const target = await t
    await sleep(500)
    target.idleRssMb = rssMb(target.pids())
    return target
  }
  const expressEnv = { UPSTREAM: upstreamUrl, EXACT_ORIGINS: JSON.stringify(list10.exact), WILDCARD_ORIGINS: JSON.stringify(list10.wildcard) }
  /** Every Node target on one line: corsgate, the express stack, bare Fastify, the bare Node proxy. */
  const nodeTargets = async (line: NodeLine): Promise<Target[]> => [
    await measure(startCorsgate(onLine('corsgate', line), { list: list10, upstream: upstreamUrl, line })),
    await measure(startNode(onLine('express', line), 'express-proxy.mjs', expressEnv, line)),
    await measure(startNode(onLine('fastify-204', line), 'fastify-204.mjs', {}, line)),
    await measure(startNode(onLine('fastify-preflight', line), 'fastify-preflight.mjs', {}, line)),
    await measure(startNode(onLine('node-proxy', line), 'node-proxy.mjs', { UPSTREAM: upstreamUrl }, line))
  ]
  const [corsgate, express, fastify, fastifyPreflight, nodeProxy] = await nodeTargets(MAIN) as [Target, Target, Target, Target, Target]
  const nginx = await measure(startNginx('nginx', { list: list10, upstreamPort, workers: 1 }))
  // The other lines' targets join the preflight and GET rounds only (the comparison of lines).
  const others: Target[][] = []
  if (wanted('preflight') || wanted('get')) for (const line of LINES.slice(1)) others.push(await nodeTargets(line))
  const other = (name: string): Target[] => others.flatMap((ts) => ts.filter((t) => t.name.startsWith(`${name}@`)))
  direct.idleRssMb = rssMb(direct.pids())
  const always = [direct, corsgate, nginx, express, fastify, fastifyPreflight, nodeProxy, ...others.flat()]

  const results: Measured[] = []
  const allowed = list10.allowedProbes
  const scenarios: Scenario[] = [
    { id: 'preflight', title: 'Preflight (OPTIONS, allowed origin)', load: { method: 'OPTIONS', origins: allowed, preflight: true }, targets: [corsgate, nginx, express, fastify, fastifyPreflight, ...other('corsgate'), ...other('express'), ...other('fastify-204'), ...other('fastify-preflight')], expectStatus: 204, ratios: [['corsgate', 'nginx'], ['corsgate', 'fastify-204'], ['corsgate', 'fastify-preflight'], ['corsgate', 'express']] },
    { id: 'get', title: 'Proxied GET, allowed origin (10-entry whitelist)', load: { origins: allowed }, targets: [direct, corsgate, nginx, express, nodeProxy, ...other('corsgate'), ...other('express'), ...other('node-proxy')], expectStatus: 200, ratios: [['corsgate', 'nginx'], ['corsgate', 'express'], ['corsgate', 'direct']] },
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

  // Every core: corsgate with 2 workers (src/workers.ts: reuseport listeners on the main line,
  // where it has them) against nginx with 2 workers (`listen … reuseport`).
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
    const out = execFileSync(MAIN.bin, ['--import', 'tsx', join(BENCH, 'decide.ts'), ...(QUICK ? ['--quick'] : [])], { cwd: ROOT }).toString()
    decideResult = JSON.parse(out.trim().split('\n').at(-1)!) as typeof decideResult
    for (const [size, r] of Object.entries(decideResult!.sizes)) console.log(`  ${size.padStart(6)} origins: best ${r.fewBestNs.toFixed(1)} ns / median ${r.fewNs.toFixed(1)} ns (same origins)  best ${r.spreadBestNs.toFixed(1)} / median ${r.spreadNs.toFixed(1)} ns (1024 distinct)`)
  }

  for (const t of [corsgate, nginx, express, fastify, fastifyPreflight, nodeProxy, ...others.flat()]) await t.stop()
  await direct.stop()

  const workersMode = workersModeOn(MAIN.version)
  const report = { info, lines: LINES.map(({ version, major }) => ({ version, major })), workersMode, quick: QUICK, rounds: ROUNDS, durationS: DURATION_S, connections: CONNECTIONS, results, halfLoad, idleRssMb: idle, rssAfterLoadMb: rssAfterLoad, decide: decideResult, scenarios: scenarios.map((s) => ({ id: s.id, ratios: s.ratios })), elapsedS: Math.round((Date.now() - started) / 1000) }
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
  lines?: Array<{ version: string, major: string }>
  workersMode?: string
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
  const cpu = (scenario: string, target: string): number | undefined => r.results.find((m) => m.scenario === scenario && m.target === target)?.median.cpuUs
  const second = r.lines?.[1]
  const at = (name: string): string => second === undefined ? name : `${name}@${second.major}`
  const fmt = (x: number | undefined, digits = 1): string => x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits)
  const mark = (ok: boolean | undefined): string => ok === undefined ? '' : ok ? ' **met**' : ' **missed**'
  const le = (a: number | undefined, b: number | undefined): boolean | undefined => a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) ? undefined : a <= b
  const ge = (a: number | undefined, b: number | undefined): boolean | undefined => le(b, a)
  const per = (a: number | undefined, b: number | undefined): number | undefined => a === undefined || b === undefined ? undefined : a / b
  lines.push(`### Ratios against the targets of issue 20 (Node targets on ${r.info.nodeMain ?? r.info.node}${second === undefined ? '' : `; the ${second.version} column from the same rounds`})`, '')
  lines.push(`| figure | target | ${r.info.nodeMain ?? 'main line'} | ${second?.version ?? 'second line'} |`, '|---|---|---|---|')
  const preCpu = cpu('preflight', 'corsgate')
  const preCpu2 = cpu('preflight', at('corsgate'))
  lines.push(`| preflight CPU µs/req, corsgate | ≤ the second line's figure and ≤ 12 | ${fmt(preCpu)}${mark(le(preCpu, 12) === undefined ? undefined : le(preCpu, 12)! && le(preCpu, preCpu2 ?? Infinity)!)} | ${fmt(preCpu2)} |`)
  const getCpu = cpu('get', 'corsgate')
  lines.push(`| proxied GET CPU µs/req, corsgate | ≤ 40 | ${fmt(getCpu)}${mark(le(getCpu, 40))} | ${fmt(cpu('get', at('corsgate')))} |`)
  const preX = per(rps('preflight', 'corsgate'), rps('preflight', 'express'))
  lines.push(`| preflight req/s, corsgate / express stack (same line) | ≥ 2× | ${fmt(preX, 2)}×${mark(ge(preX, 2))} | ${fmt(per(rps('preflight', at('corsgate')), rps('preflight', at('express'))), 2)}× |`)
  const getX = per(rps('get', 'corsgate'), rps('get', 'express'))
  lines.push(`| proxied GET req/s, corsgate / express stack (same line) | ≥ 3× | ${fmt(getX, 2)}×${mark(ge(getX, 3))} | ${fmt(per(rps('get', at('corsgate')), rps('get', at('express'))), 2)}× |`)
  const w = per(rps('workers-get', 'corsgate-2w'), rps('workers-get', 'nginx-2w'))
  lines.push(`| proxied GET req/s, corsgate 2 workers (${r.workersMode ?? '?'}) / nginx 2 workers (reuseport) | ≥ 0.9× | ${fmt(w, 2)}×${mark(ge(w, 0.9))} | |`)
  lines.push(`| idle RSS, corsgate, MB (this machine; the image's figure is in docs/deploying-image.md) | ≤ 80 | ${fmt(r.idleRssMb.corsgate)}${mark(le(r.idleRssMb.corsgate, 80))} | ${fmt(r.idleRssMb[at('corsgate')])} |`)
  lines.push('')
  if (second !== undefined && r.results.some((m) => m.target.endsWith(`@${second.major}`))) {
    lines.push('### The two Node lines in the same rounds (req/s, CPU µs/req)', '')
    lines.push(`| scenario | target | ${r.info.nodeMain} | ${second.version} |`, '|---|---|---:|---:|')
    for (const [scenario, names] of [['preflight', ['corsgate', 'express', 'fastify-204', 'fastify-preflight']], ['get', ['corsgate', 'express', 'node-proxy']]] as const) {
      for (const name of names) {
        const a = r.results.find((m) => m.scenario === scenario && m.target === name)?.median
        const b = r.results.find((m) => m.scenario === scenario && m.target === at(name))?.median
        if (a === undefined) continue
        lines.push(`| ${scenario} | ${name} | ${fmt(a.rps, 0)} (${fmt(a.cpuUs)}) | ${b === undefined ? 'n/a' : `${fmt(b.rps, 0)} (${fmt(b.cpuUs)})`} |`)
      }
    }
    lines.push('')
  }
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
  await children.killAll()
  rmSync(tmp, { recursive: true, force: true })
}

process.on('SIGINT', () => { void cleanup().then(() => process.exit(130)) })
try {
  await main()
} finally {
  await cleanup()
}
