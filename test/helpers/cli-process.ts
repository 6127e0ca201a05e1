// `corsgate start` as a real process (from source, through tsx), with its JSON log lines
// collected, so a test can wait for a line instead of sleeping.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export type LogLine = Record<string, any>

export interface CliGateway {
  child: ChildProcess
  url: string
  adminUrl: string
  lines: LogLine[]
  stderr: () => string
  /** Resolves with the first log line (already seen or still to come) that `match` accepts. */
  waitForLine: (match: (line: LogLine) => boolean, after?: number) => Promise<LogLine>
  /** SIGTERM, then the exit code. */
  stop: () => Promise<number | null>
}

/** The environment of the outer process without CORSGATE_* and NODE_ENV, plus `extra`. */
export function cleanEnv (extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('CORSGATE_') && k !== 'NODE_ENV') env[k] = v
  return { ...env, ...extra }
}

export async function startCliGateway (args: string[], env: Record<string, string> = {}): Promise<CliGateway> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: LogLine[] = []
  const waiters: Array<{ match: (l: LogLine) => boolean, after: number, resolve: (l: LogLine) => void }> = []
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine
    try { line = JSON.parse(text) as LogLine } catch { return }
    lines.push(line)
    for (const w of [...waiters]) {
      if (lines.length - 1 >= w.after && w.match(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  })
  const exited = once(child, 'exit')
  const waitForLine = async (match: (l: LogLine) => boolean, after = 0): Promise<LogLine> => {
    const seen = lines.slice(after).find(match)
    if (seen !== undefined) return seen
    return await new Promise((resolve, reject) => {
      waiters.push({ match, after, resolve })
      void exited.then(([code]) => reject(new Error(`corsgate exited (${String(code)}) before the awaited log line; stderr: ${stderr}`)))
    })
  }
  const listening = await waitForLine((l) => l.msg === 'corsgate listening')
  return {
    child,
    url: listening.url,
    adminUrl: listening.adminUrl,
    lines,
    stderr: () => stderr,
    waitForLine,
    stop: async () => {
      if (child.exitCode !== null) return child.exitCode
      child.kill('SIGTERM')
      const [code] = await exited as [number | null]
      return code
    }
  }
}
