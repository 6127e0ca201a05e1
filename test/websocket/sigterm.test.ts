// `corsgate start` as a real process: SIGTERM closes every websocket with 1001 (both ways),
// then the process exits 0 (SPEC.md "CLI").
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import t from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { testConfigYaml } from '../helpers/gateway.js'

const ORIGIN = 'https://app.example.com'

t.test('SIGTERM closes every websocket with 1001, then exits 0', async (t) => {
  const server = createServer()
  const wss = new WebSocketServer({ server })
  const upstreamCodes: number[] = []
  wss.on('connection', (ws) => { ws.on('close', (code) => upstreamCodes.push(code)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { wss.close(); server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  const upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const file = join(t.testdir(), 'config.yaml')
  writeFileSync(file, testConfigYaml({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/ws', upstream, websocket: true }] }))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const url = await new Promise<string>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string, url?: string }
      if (entry.msg === 'corsgate listening') resolve(entry.url!)
    })
  })
  const clients = await Promise.all([1, 2, 3].map(async () => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws`, { headers: { origin: ORIGIN } })
    await once(ws, 'open')
    return ws
  }))
  const closes = clients.map(async (ws) => (await once(ws, 'close'))[0] as number)
  child.kill('SIGTERM')
  t.same(await Promise.all(closes), [1001, 1001, 1001], 'every client heard 1001 "going away"')
  const [code] = await once(child, 'exit')
  t.equal(code, 0, 'exit code 0')
  t.same(upstreamCodes, [1001, 1001, 1001], 'and so did the upstream')
})
