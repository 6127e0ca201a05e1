// A file the config names (server.upstreamCaFile, redis.passwordFile, redis.tlsCaFile) that
// is missing: `start` stops with exit 2 naming the field (never a stack trace), and
// `validate` refuses it too, since it checks what `start` checks. `--skip-files` (and
// `check`) judge a config meant for another machine without the files.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { testConfigYaml } from '../helpers/gateway.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
t.setTimeout(300_000)

interface Run { code: number | null, stdout: string, stderr: string }

async function cli (args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('CORSGATE_') && k !== 'NODE_ENV') env[k] = v
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: ROOT, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}

const dir = t.testdir({ 'ca.pem': readFixtureCert(), 'not-a-cert.pem': 'hello\n' })
const missing = join(dir, 'missing')

function readFixtureCert (): string {
  // A real certificate from the TLS fixtures, so the PEM check has something to accept.
  return readFileSync(join(ROOT, 'test', 'fixtures', 'tls', 'cert.pem'), 'utf8')
}

function write (name: string, input: Parameters<typeof testConfigYaml>[0]): string {
  const file = join(dir, name)
  writeFileSync(file, testConfigYaml({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], ...input }))
  return file
}

t.test('start: a missing server.upstreamCaFile is exit 2 naming the field, no stack trace', async (t) => {
  const file = write('upstream-ca.yaml', { server: { upstreamCaFile: missing } })
  const run = await cli(['start', '--config', file])
  t.equal(run.code, 2)
  t.match(run.stderr, `server.upstreamCaFile: cannot read ${missing}: ENOENT (no such file)`)
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace')
})

t.test('validate checks every file start reads', async (t) => {
  const cases: Array<[string, Parameters<typeof testConfigYaml>[0], RegExp]> = [
    ['server.upstreamCaFile', { server: { upstreamCaFile: missing } }, /server\.upstreamCaFile: cannot read .*ENOENT/],
    ['redis.passwordFile', { redis: { url: 'redis://127.0.0.1:1', passwordFile: missing } }, /redis\.passwordFile: cannot read .*ENOENT/],
    ['redis.tlsCaFile', { redis: { url: 'rediss://127.0.0.1:1', tlsCaFile: missing } }, /redis\.tlsCaFile: cannot read .*ENOENT/],
    ['a CA file that is not PEM', { server: { upstreamCaFile: join(dir, 'not-a-cert.pem') } }, /server\.upstreamCaFile: .*holds no PEM certificate/]
  ]
  for (const [name, input, message] of cases) {
    const file = write(`${name.replace(/\W/g, '-')}.yaml`, input)
    const run = await cli(['validate', '--config', file])
    t.equal(run.code, 2, `${name}: exit 2`)
    t.match(run.stderr, message, `${name}: named`)
    const skipped = await cli(['validate', '--config', file, '--skip-files'])
    t.equal(skipped.code, 0, `${name}: --skip-files validates the rest ${skipped.stderr}`)
  }
  const all = write('all-missing.yaml', { server: { upstreamCaFile: missing }, redis: { url: 'rediss://127.0.0.1:1', passwordFile: missing, tlsCaFile: missing } })
  const run = await cli(['validate', '--config', all])
  t.equal(run.code, 2)
  t.match(run.stderr, /upstreamCaFile[\s\S]*passwordFile[\s\S]*tlsCaFile/, 'every missing file listed in one run')
  const good = write('good.yaml', { server: { upstreamCaFile: join(dir, 'ca.pem') } })
  t.equal((await cli(['validate', '--config', good])).code, 0, 'a readable CA bundle passes')
})

t.test('check judges a config without its files', async (t) => {
  const file = write('check.yaml', { server: { upstreamCaFile: missing } })
  const run = await cli(['check', '--config', file, '--origin', 'https://app.example.com'])
  t.equal(run.code, 0, run.stderr)
  t.match(run.stdout, /^ALLOWED/)
})

t.test('schema messages read as a person would write them', async (t) => {
  const file = join(dir, 'human.yaml')
  writeFileSync(file, 'server: { port: 99999, trustProxy: "yes" }\nlog: { level: loud }\npolicies:\n  default:\n    origins: "https://a.example.com"\n    preflightStatus: 201\n    allowHeaders: 3\nroutes:\n  - { path: /, upstream: "http://127.0.0.1:9", timeoutMs: 1.5 }\n  - 7\n')
  const run = await cli(['validate', '--config', file])
  t.equal(run.code, 2)
  t.match(run.stderr, 'server.port: must be at most 65535, got 99999')
  t.match(run.stderr, 'server.trustProxy: must be true or false, got "yes"')
  t.match(run.stderr, 'log.level: must be one of "fatal", "error", "warn", "info", "debug", "trace", "silent", got "loud"')
  t.match(run.stderr, 'policies.default.origins: must be a list, got "https://a.example.com"')
  t.match(run.stderr, 'policies.default.preflightStatus: must be 200 or 204, got 201')
  t.match(run.stderr, 'policies.default.allowHeaders: must be "*" or a list, got 3')
  t.match(run.stderr, 'routes[0].timeoutMs: must be a whole number, got 1.5')
  t.match(run.stderr, 'routes[1]: must be a section of key: value settings, got 7')
  t.notMatch(run.stderr, /Invalid input|expected [a-z]+, received/, 'no raw zod wording')
  const empty = join(dir, 'empty.yaml')
  writeFileSync(empty, '')
  const none = await cli(['validate', '--config', empty])
  t.match(none.stderr, 'policies: is required (a map of names to settings)')
  t.match(none.stderr, 'routes: is required (a list)')
})

t.test('--version prints the package version', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const run = await cli(['--version'])
  t.equal(run.code, 0)
  t.equal(run.stdout.trim(), pkg.version)
})
