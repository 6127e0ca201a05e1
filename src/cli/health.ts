// `corsgate health [--config FILE] [--timeout MS]`: the container image's HEALTHCHECK. It
// loads the config exactly as `start` does (the file, then the CORSGATE_* overrides) and
// asks GET /healthz of the admin server at the address that config makes it listen on, so
// a mounted config that moves `admin.host` or `admin.port` is probed where it really is.
// Exit codes: 0 healthy (200), 1 unhealthy (no answer in time, or any other status),
// 2 bad input or an invalid config (the CLI prints the ConfigError).
import { get } from 'node:http'
import { isIPv6 } from 'node:net'
import { parseArgs } from 'node:util'
import { loadConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'

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

export async function runHealthCommand (args: string[], configPath: (flag: string | undefined) => string): Promise<number> {
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
    console.error(`corsgate health: ${(err as Error).message}\n${USAGE}`)
    return EXIT.usage
  }
  const { config } = loadConfig(file) // a ConfigError goes to the CLI: printed, exit 2
  if (config.admin.port === 0) {
    console.error(`corsgate health: ${file} sets admin.port 0 (a random port), which no probe can find`)
    return EXIT.usage
  }
  const url = healthzUrl(config.admin)
  try {
    const status = await probe(url, timeoutMs)
    if (status === 200) {
      console.log(`healthy: ${url} answered 200`)
      return EXIT.healthy
    }
    console.error(`unhealthy: ${url} answered ${status}`)
  } catch (err) {
    const reason = (err as Error).name === 'TimeoutError' || (err as Error).name === 'AbortError'
      ? `no answer within ${timeoutMs} ms`
      : (err as Error).message
    console.error(`unhealthy: ${url}: ${reason}`)
  }
  return EXIT.unhealthy
}
