// `server.workers: 2` (src/workers.ts): two workers share the public port, each with its own
// admin server. On Node 22.12+ each worker binds the port itself (SO_REUSEPORT, two listening
// sockets); on older lines node:cluster's primary holds the one listening socket and hands
// connections round robin. Either way both workers accept connections, a worker that dies is
// replaced, and SIGTERM to the primary drains both (a request in flight is answered) and exits 0.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import type { ServerResponse } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import { testConfigYaml } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { echo, startUpstream } from '../helpers/upstream.js'

type LogLine = Record<string, any>

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
// The lines where `listen()` takes `reusePort`: Node 22.12+, 23.1+, 24 and later.
const expectedMode = major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12) ? 'reuseport' : 'cluster'

/** Sockets listening on 127.0.0.1:port, from /proc/net/tcp (state 0A is LISTEN). */
function listeningSockets (port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1] === local && f[3] === '0A').length
}

/** A worker's count of requests answered, from its own /metrics. */
async function requestsServed (adminUrl: string): Promise<number> {
  const text = (await send(`${adminUrl}/metrics`)).body
  return text.split('\n').filter((l) => l.startsWith('corsgate_requests_total{')).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0)
}

/** The primary's log, line by line, with a way to wait for the next line that matches. */
function followLog (child: ChildProcess): { lines: LogLine[], next: (match: (l: LogLine) => boolean) => Promise<LogLine> } {
  const lines: LogLine[] = []
  const waiting: Array<{ match: (l: LogLine) => boolean, resolve: (l: LogLine) => void }> = []
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const entry = JSON.parse(text) as LogLine
    lines.push(entry)
    for (const w of [...waiting]) {
      if (w.match(entry)) {
        waiting.splice(waiting.indexOf(w), 1)
        w.resolve(entry)
      }
    }
  })
  const next = async (match: (l: LogLine) => boolean): Promise<LogLine> => await new Promise((resolve) => waiting.push({ match, resolve }))
  return { lines, next }
}

t.test(`two workers (${expectedMode} on Node ${process.versions.node}): both accept, a killed one is replaced, SIGTERM drains`, async (t) => {
  // `/slow` is held until the test releases it: a request in flight during the drain.
  const held: ServerResponse[] = []
  let seenSlow: () => void = () => {}
  const slowSeen = new Promise<void>((resolve) => { seenSlow = resolve })
  const upstream = await startUpstream((req, res, body) => {
    if (req.url === '/slow') {
      held.push(res)
      seenSlow()
      return
    }
    echo(req, res, body)
  })
  t.teardown(async () => { await upstream.close() })
  const file = join(t.testdir(), 'config.yaml')
  // Worker i serves admin on admin.port + i. (With port 0, node:cluster would hand every worker
  // the same ephemeral port, so the test picks a free pair.) The public port stays 0: the
  // primary picks one for the reuseport workers, node:cluster shares its own.
  const adminPort = await freePortPair()
  writeFileSync(file, testConfigYaml({ server: { workers: 2 }, policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] })
    .replace(/^admin:.*(\n {2}.*)*/m, `admin: { host: 127.0.0.1, port: ${adminPort} }`))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const log = followLog(child)
  const listening = (worker: number): (l: LogLine) => boolean => (l) => l.msg === 'corsgate listening' && l.worker === worker
  const starting = log.next((l) => l.msg === 'starting workers')
  const workers = await Promise.all([log.next(listening(0)), log.next(listening(1))])

  t.equal((await starting).mode, expectedMode, `workers share the port by ${expectedMode} on Node ${major}`)
  t.equal(workers[0]!.url, workers[1]!.url, 'one public port')
  const publicPort = Number(new URL(workers[0]!.url).port)
  t.equal(listeningSockets(publicPort), expectedMode === 'reuseport' ? 2 : 1, expectedMode === 'reuseport' ? 'each worker has its own listening socket' : 'the primary holds the one listening socket')
  t.same(workers.map((w) => [w.worker, w.adminUrl]).sort(), [[0, `http://127.0.0.1:${adminPort}`], [1, `http://127.0.0.1:${adminPort + 1}`]], 'an admin server per worker, on admin.port + i')
  for (const w of workers) t.equal((await send(`${w.adminUrl}/healthz`)).status, 200)

  // Fresh connections (one per request): the kernel (reuseport) or the primary (round robin)
  // spreads them, so each worker answers some.
  for (let i = 0; i < 40; i++) {
    const res = await send(`${workers[0]!.url}/x`, { headers: { origin: 'https://app.example.com' } })
    t.equal(res.status, 200)
    t.equal(res.one('access-control-allow-origin'), 'https://app.example.com')
  }
  const served = await Promise.all(workers.map(async (w) => await requestsServed(w.adminUrl)))
  t.ok(served[0]! > 0 && served[1]! > 0, `both workers accepted connections (${served.join(' + ')})`)
  t.equal(served[0]! + served[1]!, 40, 'every request counted once')

  // A worker that dies is replaced on the same port, with its own listener again.
  const replaced = log.next((l) => listening(1)(l) && l.pid !== workers[1]!.pid)
  process.kill(workers[1]!.pid as number, 'SIGKILL')
  const again = await replaced
  t.equal(again.url, workers[0]!.url, 'the new worker serves the same port')
  t.ok(log.lines.some((l) => l.msg === 'worker exited; starting a new one' && l.worker === 1), 'the primary logged the restart')
  t.equal(listeningSockets(publicPort), expectedMode === 'reuseport' ? 2 : 1, 'listening sockets as before')
  t.equal((await send(`${again.adminUrl}/healthz`)).status, 200)
  for (let i = 0; i < 10; i++) t.equal((await send(`${workers[0]!.url}/x`)).status, 200, 'served after the restart')

  // SIGTERM with a request in flight: it is answered, then both workers stop and the primary exits 0.
  const inFlight = send(`${workers[0]!.url}/slow`, { headers: { origin: 'https://app.example.com' } })
  await slowSeen
  const draining = Promise.all([log.next((l) => l.msg === 'draining' && l.worker === 0), log.next((l) => l.msg === 'draining' && l.worker === 1)])
  child.kill('SIGTERM')
  await draining
  for (const res of held) { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('late') }
  const slow = await inFlight
  t.equal(slow.status, 200, 'the request in flight at SIGTERM is answered')
  t.equal(slow.body, 'late')
  const [code] = await once(child, 'exit')
  t.equal(code, 0, 'the primary exits 0 once the workers have drained')
  t.same(log.lines.filter((l) => l.msg === 'stopped').map((l) => l.worker).sort(), [0, 1], 'each worker drained and stopped')
})

async function freePortPair (): Promise<number> {
  for (;;) {
    const a = createServer()
    await new Promise<void>((resolve) => a.listen(0, '127.0.0.1', resolve))
    const port = (a.address() as AddressInfo).port
    const b = createServer()
    const ok = await new Promise<boolean>((resolve) => {
      b.once('error', () => resolve(false))
      b.listen(port + 1, '127.0.0.1', () => resolve(true))
    })
    a.close()
    if (ok) b.close()
    if (ok && port < 65535) return port
  }
}
