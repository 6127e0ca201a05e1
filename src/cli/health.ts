// `corsgate health [--config FILE] [--timeout MS]`: the container image's HEALTHCHECK. It
// loads the config exactly as `start` does (the file, then the CORSGATE_* overrides) and
// asks GET /healthz of the admin server at the address that config makes it listen on, so
// a mounted config that moves `admin.host` or `admin.port` is probed where it really is.
// Exit codes: 0 healthy (200), 1 unhealthy (no answer in time, or any other status),
// 2 bad input or an invalid config.
// The image runs this file directly (`node dist/cli/health.js`), not through cli.ts, so a
// probe does not load the gateway's server modules: it is a fresh process every interval,
// and on a CPU-starved host each module it loads adds to the time it has.
import { existsSync } from 'node:fs'
import { isIPv6 } from 'node:net'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'
import { get } from '../node-http.js'

const USAGE = 'usage: corsgate health [--config FILE] [--timeout MS]'
const EXIT = { healthy: 0, unhealthy: 1, usage: 2 } as const
const DEFAULT_TIMEOUT_MS = 2000

/**
 * The URL of the admin server's /healthz for a config: a wildcard bind address is reached
 * on the loopback address of its family (the probe runs beside the process).
 */
export function healthzUrl (admin: Config['admin']): string {
  const host = admin.host === '' || admin.host === '0.0.0.0'
    ? '127.0.0.1'
    : admin.host === '::' ? '::1' : admin.host
  return `http://${isIPv6(host) ? `[${host}]` : host}:${admin.port}/healthz`
}

/** GET the URL once; resolves to the status code, rejects on no answer within `timeoutMs`. */
export async function probe (url: string, timeoutMs: number): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = get(url, { signal: AbortSignal.timeout(timeoutMs), headers: { connection: 'close' } }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('error', reject)
  })
}

/** Where the command reads its environment and writes its one line (the process's by default). */
export interface HealthIo {
  env: Record<string, string | undefined>
  out: (line: string) => void
  err: (line: string) => void
}
const processIo: HealthIo = { env: process.env, out: (line) => console.log(line), err: (line) => console.error(line) }

export async function runHealthCommand (args: string[], configPath: (flag: string | undefined) => string, io: HealthIo = processIo): Promise<number> {
  let timeoutMs = DEFAULT_TIMEOUT_MS
  let file: string
  try {
    const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, timeout: { type: 'string' } }, strict: true })
    if (values.timeout !== undefined) {
      timeoutMs = Number(values.timeout)
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new Error(`--timeout must be a positive whole number of milliseconds, got "${values.timeout}"`)
    }
    file = configPath(values.config)
  } catch (err) {
    io.err(`corsgate health: ${(err as Error).message}\n${USAGE}`)
    return EXIT.usage
  }
  let config: Config
  try {
    config = loadConfig(file, io.env).config
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    io.err(err.message)
    return EXIT.usage
  }
  if (config.admin.port === 0) {
    io.err(`corsgate health: ${file} sets admin.port 0 (a random port), which no probe can find`)
    return EXIT.usage
  }
  const url = healthzUrl(config.admin)
  try {
    const status = await probe(url, timeoutMs)
    if (status === 200) {
      io.out(`healthy: ${url} answered 200`)
      return EXIT.healthy
    }
    io.err(`unhealthy: ${url} answered ${status}`)
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError'
      ? `no answer within ${timeoutMs} ms`
      : (err as Error).message
    io.err(`unhealthy: ${url}: ${reason}`)
  }
  return EXIT.unhealthy
}

// Run directly: the config file is chosen as cli.ts chooses it (--config, $CORSGATE_CONFIG,
// ./config/default.yaml, then the package's own default).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await runHealthCommand(process.argv.slice(2), (flag) => {
    const chosen = flag ?? process.env.CORSGATE_CONFIG
    if (chosen !== undefined && chosen !== '') return chosen
    if (existsSync(DEFAULT_CONFIG_PATH)) return DEFAULT_CONFIG_PATH
    return fileURLToPath(new URL(`../../${DEFAULT_CONFIG_PATH}`, import.meta.url))
  })
}
