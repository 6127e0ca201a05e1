// Websockets through corsgate: memory per idle websocket and echo throughput, tunnel (corsgate's
// upgrade.ts) against terminate (@fastify/http-proxy `websocket: true`) and direct to the upstream.
//
//   node --import tsx bench/websocket.ts [--conns 9900] [--seconds 5]
//
// Processes: this one runs the clients; the upstream (a `ws` echo server) and each gateway run in
// children of their own, so the RSS read from /proc/<pid>/status is the gateway's alone. Bounded:
// every phase has a timeout, and every child is killed on exit.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import WebSocket, { WebSocketServer } from 'ws'

const ORIGIN = 'https://app.example.com'

// ---- child roles -------------------------------------------------------------------------------

async function serveUpstream (port: number): Promise<void> {
  const wss = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
  wss.on('connection', (ws) => { ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })) })
  await once(wss, 'listening')
  process.stdout.write('ready\n')
}

async function serveTerminating (port: number, upstream: string): Promise<void> {
  const { default: Fastify } = await import('fastify')
  const { default: httpProxy } = await import('@fastify/http-proxy')
  const app = Fastify({ logger: false })
  await app.register(httpProxy, { upstream, prefix: '/ws', rewritePrefix: '/ws', websocket: true })
  await app.listen({ host: '127.0.0.1', port })
  process.stdout.write('ready\n')
}

// ---- orchestration -----------------------------------------------------------------------------

const children: ChildProcess[] = []
process.on('exit', () => { for (const c of children) c.kill('SIGKILL') })

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  await once(server, 'close')
  return port
}

/** Starts a child under `ulimit -n` as high as the hard limit allows, and waits for `ready`. */
async function start (name: string, args: string[], readyPattern: RegExp, timeoutMs = 30_000): Promise<ChildProcess> {
  const command = `ulimit -n $(ulimit -Hn); exec ${['node', ...args].map((a) => `'${a}'`).join(' ')}`
  const child = spawn('sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'], cwd: process.cwd() })
  children.push(child)
  let out = ''
  child.stderr!.on('data', (c: Buffer) => { out += c.toString() })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs)
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      if (readyPattern.test(out)) { clearTimeout(timer); resolve() }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name} exited with ${code}:\n${out}`)) })
  })
  child.removeAllListeners('exit')
  child.stdout!.resume()
  return child
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await once(child, 'exit')
  clearTimeout(timer)
}

function rssKiB (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1])
}

/** The node process under the `sh -c exec` wrapper is the same pid (exec). */
const pidOf = (child: ChildProcess): number => child.pid!

async function settle (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

async function openMany (url: string, n: number, batch = 250, timeoutMs = 120_000): Promise<WebSocket[]> {
  const sockets: WebSocket[] = []
  const deadline = Date.now() + timeoutMs
  for (let i = 0; i < n; i += batch) {
    if (Date.now() > deadline) throw new Error(`opening ${n} websockets took over ${timeoutMs} ms`)
    const group = Array.from({ length: Math.min(batch, n - i) }, () => new WebSocket(url, { headers: { origin: ORIGIN }, perMessageDeflate: false }))
    await Promise.all(group.map(async (ws) => { await once(ws, 'open') }))
    sockets.push(...group)
  }
  return sockets
}

async function closeAll (sockets: WebSocket[]): Promise<void> {
  await Promise.all(sockets.map(async (ws) => {
    if (ws.readyState === WebSocket.CLOSED) return
    const closed = once(ws, 'close')
    ws.terminate()
    await closed
  }))
}

interface Idle { conns: number, beforeKiB: number, afterKiB: number, perConnKiB: number, afterGcKiB: number, beforeGcKiB: number, perConnAfterGcKiB: number }

/** Full GC in the child (bench/gc-on-signal.mjs), then a moment for V8 to hand pages back. */
async function collect (child: ChildProcess): Promise<void> {
  const done = new Promise<void>((resolve) => {
    const onData = (c: Buffer): void => { if (c.toString().includes('gc done')) { child.stderr!.off('data', onData); resolve() } }
    child.stderr!.on('data', onData)
  })
  child.kill('SIGWINCH')
  await done
  await settle(1000)
}

/**
 * RSS of the gateway before and after holding `n` idle websockets through `url`: as found after
 * a 3 s pause, and again after a forced full GC (the handshakes' garbage gone).
 */
async function idleMemory (url: string, child: ChildProcess, n: number): Promise<Idle> {
  const pid = pidOf(child)
  // Warm the code paths (JIT, lazily allocated pools) before the baseline.
  await closeAll(await openMany(url, 200))
  await settle(1500)
  const beforeKiB = rssKiB(pid)
  await collect(child)
  const beforeGcKiB = rssKiB(pid)
  const sockets = await openMany(url, n)
  await settle(3000)
  const afterKiB = rssKiB(pid)
  await collect(child)
  const afterGcKiB = rssKiB(pid)
  await closeAll(sockets)
  return { conns: n, beforeKiB, afterKiB, perConnKiB: (afterKiB - beforeKiB) / n, beforeGcKiB, afterGcKiB, perConnAfterGcKiB: (afterGcKiB - beforeGcKiB) / n }
}

interface Throughput { messages: number, seconds: number, perSecond: number, mibPerSecond: number }

/** Echo throughput: `conns` clients, each keeping `window` messages of `size` bytes in flight. */
async function echo (url: string, { conns, window, size, seconds }: { conns: number, window: number, size: number, seconds: number }): Promise<Throughput> {
  const sockets = await openMany(url, conns, conns)
  const payload = Buffer.alloc(size, 0x61)
  let received = 0
  let running = true
  for (const ws of sockets) {
    ws.on('message', () => {
      received++
      if (running) ws.send(payload)
    })
  }
  // Warm-up second, not counted.
  for (const ws of sockets) for (let k = 0; k < window; k++) ws.send(payload)
  await settle(1000)
  const start = received
  const t0 = performance.now()
  await settle(seconds * 1000)
  const messages = received - start
  const elapsed = (performance.now() - t0) / 1000
  running = false
  await closeAll(sockets)
  return { messages, seconds: elapsed, perSecond: messages / elapsed, mibPerSecond: (messages * size) / elapsed / 1024 / 1024 }
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      port: { type: 'string' },
      upstream: { type: 'string' },
      conns: { type: 'string', default: '9900' },
      seconds: { type: 'string', default: '5' },
      modes: { type: 'string', default: 'tunnel,terminate' }
    }
  })
  if (values.role === 'upstream') return await serveUpstream(Number(values.port))
  if (values.role === 'terminate') return await serveTerminating(Number(values.port), values.upstream!)

  const conns = Number(values.conns)
  const seconds = Number(values.seconds)
  const self = new URL(import.meta.url).pathname
  const upstreamPort = await freePort()
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`
  await start('upstream', ['--import', 'tsx', self, '--role', 'upstream', '--port', String(upstreamPort)], /ready/)
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? '?'}`,
    fdLimit: readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))?.replace(/\s+/g, ' ')
  }
  const loads: Array<{ name: string, conns: number, window: number, size: number }> = [
    { name: 'small', conns: 50, window: 16, size: 128 },
    { name: 'large', conns: 8, window: 4, size: 64 * 1024 }
  ]
  const direct: Record<string, Throughput> = {}
  for (const load of loads) direct[load.name] = await echo(`ws://127.0.0.1:${upstreamPort}/ws`, { ...load, seconds })
  results.direct = direct
  console.error('direct', JSON.stringify(direct))

  for (const mode of values.modes!.split(',')) {
    const port = await freePort()
    let gateway: ChildProcess
    if (mode === 'tunnel') {
      const dir = mkdtempSync(join(tmpdir(), 'corsgate-bench-ws-'))
      const config = join(dir, 'config.yaml')
      writeFileSync(config, [
        `server: { host: 127.0.0.1, port: ${port}, maxConnections: 0 }`,
        `admin: { host: 127.0.0.1, port: ${await freePort()} }`,
        'log: { level: info }',
        `websocket: { maxMessageBytes: ${64 * 1024 * 1024} }`,
        'policies:',
        `  default: { origins: ["${ORIGIN}"] }`,
        'routes:',
        `  - { path: /ws, upstream: "${upstreamUrl}", websocket: true }`
      ].join('\n'))
      gateway = await start('corsgate', ['--expose-gc', '--import', './bench/gc-on-signal.mjs', '--import', 'tsx', 'src/cli.ts', 'start', '--config', config], /corsgate listening/)
    } else {
      gateway = await start('terminate', ['--expose-gc', '--import', './bench/gc-on-signal.mjs', '--import', 'tsx', self, '--role', 'terminate', '--port', String(port), '--upstream', upstreamUrl], /ready/)
    }
    const url = `ws://127.0.0.1:${port}/ws`
    const idle = await idleMemory(url, gateway, conns)
    console.error(mode, 'idle', JSON.stringify(idle))
    const through: Record<string, Throughput & { ratioToDirect: number }> = {}
    for (const load of loads) {
      const r = await echo(url, { ...load, seconds })
      through[load.name] = { ...r, ratioToDirect: r.perSecond / direct[load.name]!.perSecond }
    }
    console.error(mode, 'echo', JSON.stringify(through))
    results[mode] = { idle, echo: through, loads }
    await stop(gateway)
  }
  console.log(JSON.stringify(results, null, 2))
  for (const c of children) await stop(c)
}

await main()
