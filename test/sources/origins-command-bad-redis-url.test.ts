// Regression: `corsgate origins … --redis http://x` crashed with a ZodError stack and exit 1.
// A bad --redis is bad input: exit 2, a one-line message, no stack, the URL never echoed.
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testConfigYaml } from '../helpers/gateway.js'

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname

interface Run { code: number, stdout: string, stderr: string }

async function corsgate (args: string[]): Promise<Run> {
  return await new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}

const dir = mkdtempSync(join(tmpdir(), 'corsgate-cli-bad-redis-'))
const config = join(dir, 'corsgate.yaml')
writeFileSync(config, testConfigYaml({ policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] }))

t.test('--redis with another scheme: exit 2, one line, no stack', async (t) => {
  const run = await corsgate(['origins', 'add', '--policy', 'default', 'https://a.example.org', '--redis', 'http://x', '--config', config])
  t.equal(run.code, 2, run.stderr)
  t.match(run.stderr, /^corsgate origins: --redis must be a redis:\/\/ or rediss:\/\/ URL$/m)
  t.notMatch(run.stderr, /ZodError/, 'no ZodError')
  t.notMatch(run.stderr, /^\s+at /m, 'no stack trace')
  t.equal(run.stdout, '', 'nothing written, nothing printed')
})

t.test('--redis that does not parse: exit 2, the URL (and its password) not shown', async (t) => {
  const run = await corsgate(['origins', 'list', '--policy', 'default', '--redis', 'redis://:ab/cd+ef@host', '--config', config])
  t.equal(run.code, 2, run.stderr)
  t.match(run.stderr, /invalid redis URL \(not shown: it may contain a password\)/)
  t.notMatch(run.stderr, /ab\/cd|cd\+ef/, 'no part of the password')
  t.notMatch(run.stderr, /ZodError/, 'no ZodError')
  t.notMatch(run.stderr, /^\s+at /m, 'no stack trace')
})
