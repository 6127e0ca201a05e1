// `corsgate start` as a real process: serves, drains on SIGTERM and exits 0; an invalid
// config stops it with exit code 2 and a message naming the field.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import { testConfigYaml } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const cli = ['--import', 'tsx', 'src/cli.ts']

t.test('start serves until SIGTERM, then exits 0', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const dir = t.testdir()
  const file = join(dir, 'config.yaml')
  writeFileSync(file, testConfigYaml({ policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] }))
  const child = spawn(process.execPath, [...cli, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: Array<Record<string, any>> = []
  const listening = new Promise<Record<string, any>>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, any>
      lines.push(entry)
      if (entry.msg === 'corsgate listening') resolve(entry)
    })
  })
  const { url } = await listening
  const res = await send(`${url}/x`, { headers: { origin: 'https://app.example.com' } })
  t.equal(res.status, 200)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 0, 'exit code 0 after SIGTERM')
  t.ok(lines.some((l) => l.msg === 'shutting down' && l.signal === 'SIGTERM'))
  if (process.versions.node.startsWith('20.')) {
    t.ok(lines.some((l) => l.level === 40 && /CVE-2026-58044/.test(l.msg)), 'warns that Node 20 lacks the CVE fix')
  }
})

t.test('an invalid config exits 2 naming every bad field', async (t) => {
  const dir = t.testdir()
  const file = join(dir, 'bad.yaml')
  writeFileSync(file, 'server: { port: 99999, colour: blue }\npolicies:\n  default:\n    origins: ["https://*.co.uk", "https://ok.example.com/path"]\nroutes:\n  - { path: /, upstream: "ftp://x", policy: nope }\n')
  const child = spawn(process.execPath, [...cli, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const [code] = await once(child, 'exit')
  t.equal(code, 2)
  t.match(stderr, /server\.port/)
  t.match(stderr, /server: unknown key "colour"/)
  t.match(stderr, /routes\[0\]\.upstream/)
  t.match(stderr, /policies\.default\.origins\[0\]: "https:\/\/\*\.co\.uk": .*public suffix/)
  t.match(stderr, /policies\.default\.origins\[1\].*path/)
})
