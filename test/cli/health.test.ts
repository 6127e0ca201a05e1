// `corsgate health` against a real gateway: it probes the admin address the config file
// (and the CORSGATE_* overrides) really set, not a fixed 9090, and says unhealthy when
// nothing healthy answers there. Most cases call the command in this process with its
// own environment; a few run it as a real process, through the CLI and directly as the
// image's HEALTHCHECK does.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { healthzUrl, runHealthCommand } from '../../src/cli/health.js'
import { loadConfig } from '../../src/config/load.js'
import { startGateway } from '../../src/server.js'
import { testConfigYaml } from '../helpers/gateway.js'

interface Run { code: number | null, stdout: string, stderr: string }

/** `corsgate health ARGS` in this process, with exactly the environment given. */
async function health (args: string[], env: Record<string, string> = {}): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await runHealthCommand(args, (flag) => flag ?? env.CORSGATE_CONFIG ?? 'config/default.yaml', {
    env,
    out: (line) => { stdout += line + '\n' },
    err: (line) => { stderr += line + '\n' }
  })
  return { code, stdout, stderr }
}

/** The command as a real process, with no CORSGATE_* variables but those given. */
async function healthProcess (entry: string[], args: string[], env: Record<string, string> = {}): Promise<Run> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CORSGATE_')))
  const child = spawn(process.execPath, ['--import', 'tsx', ...entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...clean, ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout, stderr }
}
const viaCli = ['src/cli.ts', 'health']
// The image's HEALTHCHECK runs the module itself, without the rest of the CLI.
const direct = ['src/cli/health.ts']

/** A port nothing listens on right now (the OS's pick, then released). */
async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/** A config file whose admin server is at `admin` (the public server stays on port 0; /healthz never calls the upstream). */
function writeConfig (dir: string, admin: { host: string, port: number }, name = 'config.yaml'): string {
  const doc = parse(testConfigYaml({ log: { level: 'silent' }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] })) as Record<string, unknown>
  doc.admin = admin
  const file = join(dir, name)
  writeFileSync(file, stringify(doc))
  return file
}

async function startFrom (file: string, env: Record<string, string> = {}): Promise<{ close: () => Promise<void> }> {
  return await startGateway({ loaded: loadConfig(file, env), logger: pino({ level: 'silent' }) })
}

t.test('probes the admin port the config file sets, not 9090', async (t) => {
  const port = await freePort()
  t.not(port, 9090)
  const file = writeConfig(t.testdir(), { host: '127.0.0.1', port })
  const gateway = await startFrom(file)
  let closed = false
  t.teardown(async () => { if (!closed) await gateway.close() })

  const ok = await health(['--config', file])
  t.equal(ok.code, 0, ok.stderr)
  t.equal(ok.stdout, `healthy: http://127.0.0.1:${port}/healthz answered 200\n`)

  const cli = await healthProcess(viaCli, ['--config', file])
  t.equal(cli.code, 0, `as \`corsgate health\`, a real process ${cli.stderr}`)
  t.match(cli.stdout, `healthy: http://127.0.0.1:${port}/healthz answered 200`)

  const run = await healthProcess(direct, [], { CORSGATE_CONFIG: file })
  t.equal(run.code, 0, `run directly as the image's HEALTHCHECK does, the file named by CORSGATE_CONFIG ${run.stderr}`)
  t.match(run.stdout, `healthy: http://127.0.0.1:${port}/healthz answered 200`)

  await gateway.close()
  closed = true
  const down = await health(['--config', file])
  t.equal(down.code, 1, 'unhealthy once the gateway is gone')
  t.match(down.stderr, `unhealthy: http://127.0.0.1:${port}/healthz`)
})

t.test('a CORSGATE_ADMIN_* override moves the probe as it moves the server', async (t) => {
  const filePort = await freePort()
  const envPort = await freePort()
  const file = writeConfig(t.testdir(), { host: '127.0.0.1', port: filePort })
  const env = { CORSGATE_ADMIN_PORT: String(envPort) }
  const gateway = await startFrom(file, env)
  t.teardown(async () => { await gateway.close() })

  const withEnv = await health(['--config', file], env)
  t.equal(withEnv.code, 0, withEnv.stderr)
  t.match(withEnv.stdout, `:${envPort}/healthz`)

  const withoutEnv = await health(['--config', file])
  t.equal(withoutEnv.code, 1, 'without the override it looks at the file\'s port, where nothing listens')
  t.match(withoutEnv.stderr, `:${filePort}/healthz`)
})

t.test('an admin server bound to 0.0.0.0 is probed on loopback', async (t) => {
  const port = await freePort()
  const file = writeConfig(t.testdir(), { host: '0.0.0.0', port })
  const gateway = await startFrom(file)
  t.teardown(async () => { await gateway.close() })
  const run = await health(['--config', file])
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, `http://127.0.0.1:${port}/healthz`)
})

t.test('an answer other than 200, or none in time, is unhealthy', async (t) => {
  const dir = t.testdir()
  const answering = createServer((_req, res) => { res.statusCode = 503; res.end() }).listen(0, '127.0.0.1')
  const silent: Server = createServer(() => { /* never answers */ }).listen(0, '127.0.0.1')
  await Promise.all([once(answering, 'listening'), once(silent, 'listening')])
  t.teardown(() => { answering.close(); silent.closeAllConnections(); silent.close() })

  const file503 = writeConfig(dir, { host: '127.0.0.1', port: (answering.address() as AddressInfo).port }, '503.yaml')
  const run503 = await health(['--config', file503])
  t.equal(run503.code, 1)
  t.match(run503.stderr, /answered 503/)

  const fileSilent = writeConfig(dir, { host: '127.0.0.1', port: (silent.address() as AddressInfo).port }, 'silent.yaml')
  const runSilent = await health(['--config', fileSilent, '--timeout', '300'])
  t.equal(runSilent.code, 1)
  t.match(runSilent.stderr, /no answer within 300 ms/)
})

t.test('bad input exits 2 with a message', async (t) => {
  const dir = t.testdir()
  const bad = join(dir, 'bad.yaml')
  writeFileSync(bad, 'admin: { port: 99999 }\n')
  const invalid = await health(['--config', bad])
  t.equal(invalid.code, 2)
  t.match(invalid.stderr, /admin\.port/)
  const invalidDirect = await healthProcess(direct, ['--config', bad])
  t.equal(invalidDirect.code, 2, 'run directly: an invalid config exits 2 as well')
  t.match(invalidDirect.stderr, /admin\.port/)

  const random = writeConfig(dir, { host: '127.0.0.1', port: 0 })
  const zero = await health(['--config', random])
  t.equal(zero.code, 2)
  t.match(zero.stderr, /admin\.port 0/)

  const timeout = await health(['--config', random, '--timeout', 'soon'])
  t.equal(timeout.code, 2)
  t.match(timeout.stderr, /--timeout must be a positive whole number/)

  const unknown = await health(['--port', '1'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /usage: corsgate health/)
})

t.test('healthzUrl: wildcard binds become loopback, IPv6 literals are bracketed', async (t) => {
  t.equal(healthzUrl({ host: '0.0.0.0', port: 9191 }), 'http://127.0.0.1:9191/healthz')
  t.equal(healthzUrl({ host: '::', port: 9191 }), 'http://[::1]:9191/healthz')
  t.equal(healthzUrl({ host: '::1', port: 1 }), 'http://[::1]:1/healthz')
  t.equal(healthzUrl({ host: '10.1.2.3', port: 9090 }), 'http://10.1.2.3:9090/healthz')
  t.equal(healthzUrl({ host: 'localhost', port: 9090 }), 'http://localhost:9090/healthz')
})
