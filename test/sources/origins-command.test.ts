// `corsgate origins …` run as a real process against a real Redis.
import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runOriginsCommand } from '../../src/cli/origins.js'
import { testConfigYaml } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis-server.js'
import { startRedisGateway, uniquePrefix, waitForRedisLoaded, waitForVerdict } from '../helpers/redis-gateway.js'

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname

interface Run { code: number, stdout: string, stderr: string }

/** The real `corsgate` binary in a child process (slow under tsx: used for the end-to-end cases). */
async function corsgate (args: string[], env: Record<string, string> = {}): Promise<Run> {
  return await new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}

/** The same command in this process, output captured (what `corsgate origins …` runs). */
async function origins (args: string[]): Promise<Run> {
  const stdout: string[] = []
  const stderr: string[] = []
  const { log, error } = console
  console.log = (...a: unknown[]) => { stdout.push(a.join(' ')) }
  console.error = (...a: unknown[]) => { stderr.push(a.join(' ')) }
  try {
    const code = await runOriginsCommand(args, (flag) => flag ?? 'config/default.yaml')
    return { code, stdout: stdout.join('\n'), stderr: stderr.join('\n') }
  } finally {
    console.log = log
    console.error = error
  }
}

t.test('origins add/remove/deny/undeny/list with --ttl, and an invalid pattern', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-cli-'))
  const config = join(dir, 'corsgate.yaml')
  writeFileSync(config, testConfigYaml({
    policies: { default: { origins: ['https://app.example.com'] }, api: { origins: [], deny: ['https://blocked.example.com'] } },
    routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }],
    redis: { url: redis.url, keyPrefix: prefix }
  }))
  const keys = { origins: `${prefix}policy:api:origins`, deny: `${prefix}policy:api:deny`, expiring: `${prefix}policy:api:origins:expiring` }
  // A gateway listening, to see the publish work end to end.
  const gw = await startRedisGateway(redis, { policies: { api: { origins: [] } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9', policy: 'api' }], redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)

  const add = await corsgate(['origins', 'add', '--policy', 'api', 'HTTPS://Partner.Example.org:443', 'https://*.partner.example.org', '--config', config])
  t.equal(add.code, 0, add.stderr)
  t.same((await redis.client.smembers(keys.origins)).sort(), ['https://*.partner.example.org', 'https://partner.example.org'], 'normalised text written')
  t.match(add.stdout, /added https:\/\/partner\.example\.org, https:\/\/\*\.partner\.example\.org on policy api: 2 changes/)
  t.match(add.stdout, /reload published to [1-9]/, 'the reload channel reached the gateway')
  t.match(add.stdout, /allow\s+https:\/\/partner\.example\.org\s+redis/, 'prints the resulting set')
  await waitForVerdict(gw, 'https://partner.example.org', true, 2000)

  // Expiring entry, plus an already-expired member that the CLI prunes.
  await redis.client.zadd(keys.expiring, Date.now() - 60_000, 'https://old-preview.example.org')
  const before = Date.now()
  const ttl = await origins(['add', '--policy', 'api', '--ttl', '7d', 'https://pr-42.preview.example.org', '--config', config])
  t.equal(ttl.code, 0, ttl.stderr)
  const score = Number(await redis.client.zscore(keys.expiring, 'https://pr-42.preview.example.org'))
  t.ok(score >= before + 7 * 86_400_000 && score <= Date.now() + 7 * 86_400_000, 'score = now + 7 days (Unix ms)')
  t.equal(await redis.client.zscore(keys.expiring, 'https://old-preview.example.org'), null, 'expired member pruned by the CLI')
  t.match(ttl.stdout, /1 expired pruned/)
  t.equal(await redis.client.sismember(keys.origins, 'https://pr-42.preview.example.org'), 0, 'not in the permanent set')

  const deny = await origins(['deny', '--policy', 'api', 'https://evil.example.org', '--config', config])
  t.equal(deny.code, 0, deny.stderr)
  t.same(await redis.client.smembers(keys.deny), ['https://evil.example.org'])

  const list = await origins(['list', '--policy', 'api', '--config', config])
  t.equal(list.code, 0, list.stderr)
  t.match(list.stdout, /deny\s+https:\/\/blocked\.example\.com\s+file/, 'file entries are listed with their source')
  t.match(list.stdout, /allow\s+https:\/\/pr-42\.preview\.example\.org\s+redis-expiring\s+expires 20\d\d-\d\d-\d\dT[0-9:.]+Z \(in (6d 23h|7d 0h)\)/, 'expiring entries show their expiry')
  t.match(list.stdout, /deny\s+https:\/\/evil\.example\.org\s+redis/)
  const json = await origins(['list', '--policy', 'api', '--config', config, '--json'])
  const parsed = JSON.parse(json.stdout) as { entries: Array<{ list: string, pattern: string, source: string, expiresAt?: number }> }
  t.same(parsed.entries.find((e) => e.source === 'redis-expiring'), { list: 'allow', pattern: 'https://pr-42.preview.example.org', source: 'redis-expiring', expiresAt: score, expired: false })

  const invalid = await corsgate(['origins', 'add', '--policy', 'api', 'https://fine.example.org', 'https://*.co.uk', 'not-an-origin', '--config', config])
  t.equal(invalid.code, 2, 'an invalid pattern is bad input')
  t.match(invalid.stderr, /nothing written/)
  t.match(invalid.stderr, /"https:\/\/\*\.co\.uk": .*public suffix/, 'says which pattern and why')
  t.match(invalid.stderr, /"not-an-origin": not an origin/)
  t.equal(await redis.client.sismember(keys.origins, 'https://fine.example.org'), 0, 'nothing written, not even the valid one')

  const star = await origins(['add', '--policy', 'api', '*', '--config', config])
  t.equal(star.code, 2, '"*" on a credentialed policy is refused')

  const remove = await origins(['remove', '--policy', 'api', 'https://partner.example.org', 'https://pr-42.preview.example.org', '--config', config])
  t.equal(remove.code, 0, remove.stderr)
  t.same(await redis.client.smembers(keys.origins), ['https://*.partner.example.org'])
  t.equal(await redis.client.zcard(keys.expiring), 0, 'remove also removes from the expiring set')
  await waitForVerdict(gw, 'https://partner.example.org', false, 2000)

  const undeny = await origins(['undeny', '--policy', 'api', 'https://evil.example.org', '--config', config])
  t.equal(undeny.code, 0, undeny.stderr)
  t.equal(await redis.client.exists(keys.deny), 0)
})

t.test('origins: bad input exits 2, an unreachable Redis exits 1 without printing the password', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-cli-'))
  const config = join(dir, 'corsgate.yaml')
  writeFileSync(config, testConfigYaml({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] }))
  const noPolicy = await origins(['add', 'https://a.example.org', '--redis', 'redis://127.0.0.1:1', '--config', config])
  t.equal(noPolicy.code, 2)
  t.match(noPolicy.stderr, /--policy NAME is required/)
  const badTtl = await origins(['add', '--policy', 'default', '--ttl', 'soon', 'https://a.example.org', '--redis', 'redis://127.0.0.1:1', '--config', config])
  t.equal(badTtl.code, 2)
  t.match(badTtl.stderr, /invalid --ttl "soon"/)
  const noRedis = await origins(['list', '--policy', 'default', '--config', config])
  t.equal(noRedis.code, 2)
  t.match(noRedis.stderr, /no Redis to write to/)
  const down = await corsgate(['origins', 'list', '--policy', 'default', '--redis', 'redis://:hunter2@127.0.0.1:1/0', '--config', config])
  t.equal(down.code, 1, 'Redis error')
  t.match(down.stderr, /ECONNREFUSED/)
  t.notMatch(down.stderr + down.stdout, /hunter2/, 'the password is masked')
  t.match(down.stderr, /redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0/)
})
