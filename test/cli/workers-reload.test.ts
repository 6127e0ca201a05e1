// SIGHUP to a `server.workers` primary reaches every worker (src/workers.ts relays it over
// IPC; a worker does not watch the signal itself), and each reloads its config file.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import { testConfigYaml } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('SIGHUP to the primary: every worker reloads its config, and the gateway keeps serving', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const file = join(t.testdir(), 'config.yaml')
  writeFileSync(file, testConfigYaml({ server: { workers: 2 }, policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] }))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })

  const waiters: Array<{ test: (l: Record<string, any>) => boolean, count: number, seen: Array<Record<string, any>>, resolve: (l: Array<Record<string, any>>) => void }> = []
  const waitFor = async (test: (l: Record<string, any>) => boolean, count: number): Promise<Array<Record<string, any>>> =>
    await new Promise((resolve) => waiters.push({ test, count, seen: [], resolve }))
  createInterface({ input: child.stdout }).on('line', (line) => {
    const entry = JSON.parse(line) as Record<string, any>
    for (const w of waiters) {
      if (w.seen.length < w.count && w.test(entry)) {
        w.seen.push(entry)
        if (w.seen.length === w.count) w.resolve(w.seen)
      }
    }
  })

  const listening = await waitFor((l) => l.msg === 'corsgate listening', 2)
  const reloaded = waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith('config reloaded') && l.reason === 'SIGHUP', 2)
  child.kill('SIGHUP')
  const lines = await reloaded
  t.same(lines.map((l) => l.worker).sort(), [0, 1], 'both workers reloaded on the primary\'s SIGHUP')
  t.equal(child.exitCode, null, 'SIGHUP is not a shutdown')
  const res = await send(`${listening[0]!.url}/x`, { headers: { origin: 'https://app.example.com' } })
  t.equal(res.status, 200)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 0)
})
