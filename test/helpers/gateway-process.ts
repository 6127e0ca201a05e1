// A real `corsgate start` in a child process, from a config object; ready when it logs
// "corsgate listening" (an event, not a sleep). Stopped with SIGTERM, which drains and exits 0.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { stringify } from 'yaml'

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname

export interface GatewayProcess {
  url: string
  adminUrl: string
  child: ChildProcess
  /** SIGTERM, and the exit code. */
  stop: () => Promise<number | null>
}

export async function startGatewayProcess (config: Record<string, unknown>): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-proc-'))
  const file = join(dir, 'config.yaml')
  writeFileSync(file, stringify({ server: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, log: { level: 'info' }, ...config }))
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString() })
  const listening = await new Promise<{ url: string, adminUrl: string }>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, string>
        if (entry.msg === 'corsgate listening') resolve({ url: entry.url!, adminUrl: entry.adminUrl! })
      } catch { /* not a log line */ }
    })
    child.once('exit', (code) => reject(new Error(`corsgate exited with ${String(code)} before listening:\n${stderr}`)))
  })
  return {
    ...listening,
    child,
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode
      child.kill('SIGTERM')
      const [code] = await once(child, 'exit') as [number | null]
      return code
    }
  }
}
