// `server.workers: 2` (node:cluster, src/workers.ts): two workers share the public port, each
// with its own admin server; SIGTERM to the primary drains both and the primary exits 0.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import { testConfigYaml } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('two workers serve one port; SIGTERM to the primary drains both and exits 0', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const file = join(t.testdir(), 'config.yaml')
  // Worker i serves admin on admin.port + i. (With port 0, node:cluster would hand every worker
  // the same ephemeral port, so the test picks a free pair.)
  const adminPort = await freePortPair()
  writeFileSync(file, testConfigYaml({ server: { workers: 2 }, policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] })
    .replace(/^admin:.*(\n {2}.*)*/m, `admin: { host: 127.0.0.1, port: ${adminPort} }`))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const lines: Array<Record<string, any>> = []
  const listening = new Promise<Array<Record<string, any>>>((resolve) => {
    const seen: Array<Record<string, any>> = []
    createInterface({ input: child.stdout }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, any>
      lines.push(entry)
      if (entry.msg === 'corsgate listening') seen.push(entry)
      if (seen.length === 2) resolve(seen)
    })
  })
  const workers = await listening
  t.same(workers.map((w) => w.worker).sort(), [0, 1], 'both workers started')
  t.equal(workers[0]!.url, workers[1]!.url, 'one public port')
  t.same(workers.map((w) => [w.worker, w.adminUrl]).sort(), [[0, `http://127.0.0.1:${adminPort}`], [1, `http://127.0.0.1:${adminPort + 1}`]], 'an admin server per worker, on admin.port + i')
  for (const w of workers) t.equal((await send(`${w.adminUrl}/healthz`)).status, 200)
  const res = await send(`${workers[0]!.url}/x`, { headers: { origin: 'https://app.example.com' } })
  t.equal(res.status, 200)
  t.equal(String(res.headers['access-control-allow-origin']), 'https://app.example.com')

  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 0, 'the primary exits 0 once the workers have drained')
  t.same(lines.filter((l) => l.msg === 'stopped').map((l) => l.worker).sort(), [0, 1], 'each worker drained and stopped')
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
