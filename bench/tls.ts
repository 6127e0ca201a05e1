// TLS and HTTP/2 on the public port: corsgate against nginx with the same certificate, the
// same policy (bench/nginx.conf.template) and HTTP/2, for preflights and proxied GETs, over
// HTTP/1.1 and HTTP/2. Load from h2load (apt: nghttp2-client) in its own process; targets
// measured in alternating rounds in the same run, medians, and ratios against nginx from that
// run, with CPU time per request of each target's own processes.
//
//   npm run build && flock /tmp/corsgate-bench.lock node --import tsx bench/tls.ts
//   BENCH_QUICK=1 …          2 rounds × 3 s instead of 3 rounds × 5 s
//   BENCH_NO_WRITE=1 …       print only; otherwise the section "TLS and HTTP/2" of bench/RESULTS.md is written
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { stringify } from 'yaml'
import { childPids, cpuTicks, median } from './processes.js'
import { makeWhitelist, nginxHostnamesMap } from './whitelist.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const BENCH = join(ROOT, 'bench')
const QUICK = process.env.BENCH_QUICK === '1'
const ROUNDS = QUICK ? 2 : 3
const DURATION_S = QUICK ? 3 : 5
const CONNECTIONS = 50
// Streams in flight per HTTP/2 connection (a browser page has several).
const STREAMS = 10
const WRITE = process.env.BENCH_NO_WRITE !== '1'
let nextPort = Number(process.env.BENCH_PORT_BASE ?? 18400)
const tmp = mkdtempSync(join(tmpdir(), 'corsgate-bench-tls-'))
const children = new Set<ChildProcess>()

interface Target { name: string, url: string, pids: () => number[], stop: () => Promise<void> }

function launch (name: string, cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000) })
  child.on('exit', (code) => {
    children.delete(child)
    if (code !== 0 && code !== null) console.error(`[bench] ${name} exited ${code}\n${stderr}`)
  })
  children.add(child)
  return child
}

async function stop (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill(signal)
  await exited
}

const insecure = new Agent({ connect: { rejectUnauthorized: false } })

async function waitFor (url: string, child: ChildProcess, name: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited before listening`)
    try {
      const res = await request(url, { dispatcher: insecure, headersTimeout: 1000 })
      await res.body.dump()
      return
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error(`${name} did not listen on ${url}`)
}

const CLOCK_TICKS = 100
interface Load { rps: number, ok: number, failed: number, cpuUs: number }

/** One h2load run against `target`: req/s, answers with the expected class, failures, CPU µs per request. */
function h2load (target: Target, path: string, protocol: 'h1' | 'h2', headers: string[]): Load {
  const args = ['-c', String(CONNECTIONS), '-D', String(DURATION_S), '--warm-up-time=1', ...headers.flatMap((h) => ['-H', h])]
  if (protocol === 'h1') args.push('--h1')
  else args.push('-m', String(STREAMS))
  const pids = target.pids()
  const before = cpuTicks(pids)
  const out = execFileSync('h2load', [...args, target.url + path], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })
  const ticks = cpuTicks(pids) - before
  const rps = Number(/finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1] ?? 0)
  const done = Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(out)?.[1] ?? 0)
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out)
  const failed = Number(/(\d+) failed/.exec(out)?.[1] ?? 0)
  const ok = Number(codes?.[1] ?? 0)
  // Requests done during the measured period (after warm-up) is what the ticks cover best.
  const cpuUs = done > 0 ? (ticks / CLOCK_TICKS) * 1e6 / Math.max(done, rps * DURATION_S) : 0
  return { rps, ok, failed, cpuUs }
}

async function main (): Promise<void> {
  const certFile = join(tmp, 'tls.crt')
  const keyFile = join(tmp, 'tls.key')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-subj', '/CN=localhost', '-days', '1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })

  const list = makeWhitelist(10)
  const upstreamPort = nextPort++
  const upstream = launch('upstream', process.execPath, [join(BENCH, 'targets', 'upstream.mjs')], { PORT: String(upstreamPort) })

  const corsgateConfig = (file: string, port: number, tls: boolean): string => {
    writeFileSync(file, stringify({
      server: { host: '127.0.0.1', port, ...(tls ? { tls: { certFile, keyFile } } : {}) },
      admin: { host: '127.0.0.1', port: nextPort++ },
      log: { level: 'warn' },
      observe: { enabled: false },
      policies: { default: { origins: list.all, credentials: true, maxAge: 600 } },
      routes: [{ path: '/', upstream: `http://127.0.0.1:${upstreamPort}` }]
    }))
    return file
  }
  const cgPort = nextPort++
  const cgConfig = corsgateConfig(join(tmp, 'corsgate.yaml'), cgPort, true)
  const cgChild = launch('corsgate', process.execPath, [join(ROOT, 'dist', 'cli.js'), 'start', '--config', cgConfig], { CORSGATE_LOG_LEVEL: 'warn' })
  const corsgate: Target = { name: 'corsgate', url: `https://127.0.0.1:${cgPort}`, pids: () => [cgChild.pid!, ...childPids(cgChild.pid!)], stop: async () => { await stop(cgChild) } }
  await waitFor(corsgate.url, cgChild, 'corsgate')
  // The same corsgate without TLS: what TLS itself costs, measured in the same run.
  const plainPort = nextPort++
  const plainConfig = corsgateConfig(join(tmp, 'corsgate-plain.yaml'), plainPort, false)
  const plainChild = launch('corsgate-plain', process.execPath, [join(ROOT, 'dist', 'cli.js'), 'start', '--config', plainConfig], { CORSGATE_LOG_LEVEL: 'warn' })
  const corsgatePlain: Target = { name: 'corsgate', url: `http://127.0.0.1:${plainPort}`, pids: () => [plainChild.pid!], stop: async () => { await stop(plainChild) } }
  await waitFor(corsgatePlain.url, plainChild, 'corsgate-plain')

  const ngPort = nextPort++
  const prefix = mkdtempSync(join(tmp, 'nginx-'))
  writeFileSync(join(prefix, 'whitelist.map'), nginxHostnamesMap(list))
  const nginxVersion = execFileSync('sh', ['-c', 'nginx -v 2>&1'], { encoding: 'utf8' }).trim()
  const [major = 0, minor = 0, patch = 0] = (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(nginxVersion)?.slice(1) ?? []).map(Number)
  // `http2 on` from nginx 1.25.1; before it, the `http2` parameter of `listen`.
  const modern = major > 1 || (major === 1 && (minor > 25 || (minor === 25 && patch >= 1)))
  const listen = modern
    ? `listen 127.0.0.1:${ngPort} ssl reuseport backlog=4096;\n    http2 on;`
    : `listen 127.0.0.1:${ngPort} ssl http2 reuseport backlog=4096;`
  const ngPlainPort = nextPort++
  const conf = readFileSync(join(BENCH, 'nginx.conf.template'), 'utf8')
    .replaceAll('{{WORKERS}}', '1')
    .replace('listen 127.0.0.1:{{PORT}} reuseport backlog=4096;', `${listen}\n    listen 127.0.0.1:${ngPlainPort} reuseport backlog=4096;\n    ssl_certificate ${certFile};\n    ssl_certificate_key ${keyFile};\n    ssl_protocols TLSv1.2 TLSv1.3;`)
    .replaceAll('{{UPSTREAM_PORT}}', String(upstreamPort))
    .replaceAll('{{WHITELIST_FILE}}', join(prefix, 'whitelist.map'))
  writeFileSync(join(prefix, 'nginx.conf'), conf)
  const ngChild = launch('nginx', 'nginx', ['-c', join(prefix, 'nginx.conf'), '-p', prefix, '-g', 'daemon off;'])
  const nginx: Target = { name: 'nginx', url: `https://127.0.0.1:${ngPort}`, pids: () => [ngChild.pid!, ...childPids(ngChild.pid!)], stop: async () => { await stop(ngChild, 'SIGQUIT') } }
  await waitFor(nginx.url, ngChild, 'nginx')
  const nginxPlain: Target = { ...nginx, url: `http://127.0.0.1:${ngPlainPort}` }

  const origin = list.allowedProbes[0]!
  const scenarios = [
    { id: 'preflight', title: 'Preflight (OPTIONS, allowed origin)', path: '/api/items', headers: [`origin: ${origin}`, ':method: OPTIONS', 'access-control-request-method: PUT'] },
    { id: 'get', title: 'Proxied GET, allowed origin', path: '/api/items', headers: [`origin: ${origin}`] }
  ]
  const results: Array<{ scenario: string, protocol: string, target: string, rps: number, cpuUs: number, ok: number, failed: number }> = []
  for (const s of scenarios) {
    for (const protocol of ['plain', 'h1', 'h2'] as const) {
      const runs: Record<string, Load[]> = { corsgate: [], nginx: [] }
      const pair = protocol === 'plain' ? [corsgatePlain, nginxPlain] : [corsgate, nginx]
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? pair : [...pair].reverse()
        for (const target of order) runs[target.name]!.push(h2load(target, s.path, protocol === 'h2' ? 'h2' : 'h1', s.headers))
      }
      for (const [target, loads] of Object.entries(runs)) {
        results.push({ scenario: s.id, protocol, target, rps: median(loads.map((l) => l.rps)), cpuUs: median(loads.map((l) => l.cpuUs)), ok: loads.reduce((n, l) => n + l.ok, 0), failed: loads.reduce((n, l) => n + l.failed, 0) })
      }
      const cg = results.at(-2)!
      const ng = results.at(-1)!
      console.log(`${s.id} ${protocol} ok ${cg.ok}/${ng.ok}: corsgate ${cg.rps.toFixed(0)} req/s ${cg.cpuUs.toFixed(1)} µs/req, nginx ${ng.rps.toFixed(0)} req/s ${ng.cpuUs.toFixed(1)} µs/req, ratio ${(cg.rps / ng.rps).toFixed(2)} (failed ${cg.failed}/${ng.failed})`)
    }
  }
  await corsgate.stop()
  await corsgatePlain.stop()
  await nginx.stop()
  await stop(upstream)

  const node = process.version
  const lines = ['## TLS and HTTP/2', '']
  lines.push(`\`npm run build && flock /tmp/corsgate-bench.lock node --import tsx bench/tls.ts\` (${QUICK ? 'quick' : 'full'} run): ${cpus().length} cores, load average at start ${loadavg().map((l) => l.toFixed(2)).join(' ')} (shared machine: read the ratios), Node ${node}, ${nginxVersion}, ${execFileSync('sh', ['-c', 'h2load --version | head -1'], { encoding: 'utf8' }).trim()}.`)
  lines.push(`Load: \`h2load -c${CONNECTIONS} -D${DURATION_S} --warm-up-time=1\` (HTTP/2: \`-m${STREAMS}\` streams per connection; HTTP/1.1: \`--h1\`), ${ROUNDS} alternating rounds per target, medians. corsgate: \`node dist/cli.js start\` with \`server.tls\` (one process, log level warn, observe off); nginx: \`bench/nginx.conf.template\` with the same certificate (ECDSA P-256) and HTTP/2 (\`listen … ssl http2\` on nginx before 1.25.1, \`http2 on\` after), \`worker_processes 1\`. Same 10-entry policy, same upstream (\`bench/targets/upstream.mjs\`). The no-TLS rows: a second corsgate process without \`server.tls\` and a plain \`listen\` of the same nginx, loaded the same way (\`h2load --h1\` on http://). CPU: user + system time of each target's own processes per request. corsgate answers HTTP/2 through Node's compatibility request/response objects over nghttp2.`, '')
  lines.push('| scenario | protocol | corsgate req/s | nginx req/s | corsgate / nginx | corsgate CPU µs/req | nginx CPU µs/req | failed (corsgate / nginx) |', '|---|---|---|---|---|---|---|---|')
  for (const s of scenarios) {
    for (const protocol of ['plain', 'h1', 'h2']) {
      const cg = results.find((r) => r.scenario === s.id && r.protocol === protocol && r.target === 'corsgate')!
      const ng = results.find((r) => r.scenario === s.id && r.protocol === protocol && r.target === 'nginx')!
      lines.push(`| ${s.title} | ${protocol === 'plain' ? 'HTTP/1.1, no TLS (reference)' : protocol === 'h1' ? 'HTTP/1.1 over TLS' : 'HTTP/2'} | ${cg.rps.toFixed(0)} | ${ng.rps.toFixed(0)} | ${(cg.rps / ng.rps).toFixed(2)}× | ${cg.cpuUs.toFixed(1)} | ${ng.cpuUs.toFixed(1)} | ${cg.failed} / ${ng.failed} |`)
    }
  }
  const section = lines.join('\n') + '\n'
  console.log('\n' + section)
  if (WRITE) {
    const file = join(BENCH, 'RESULTS.md')
    const text = readFileSync(file, 'utf8')
    const start = text.indexOf('## TLS and HTTP/2\n')
    let next: number
    if (start >= 0) {
      next = text.indexOf('\n## ', start + 1)
      writeFileSync(file, text.slice(0, start) + section + (next >= 0 ? text.slice(next) : ''))
    } else {
      writeFileSync(file, text.trimEnd() + '\n\n' + section)
    }
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
}).finally(async () => {
  for (const child of children) child.kill('SIGKILL')
  await insecure.close()
  rmSync(tmp, { recursive: true, force: true })
})
