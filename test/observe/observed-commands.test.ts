// `corsgate origins observed`, `corsgate diff` and `corsgate origins remove|deny --dry-run`
// against a real Redis holding what a real gateway observed. Exit codes: observed 0 / 1 Redis
// error / 2 bad input; diff 0 no refusal / 1 a refusal carries traffic / 2 bad input.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { runOriginsCommand } from '../../src/cli/origins.js'
import { runDiffCommand } from '../../src/cli/diff.js'
import { readObservedCounts } from '../../src/observe/observed-reader.js'
import { testConfigYaml } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startRedis } from '../helpers/redis-server.js'
import { startRedisGateway, uniquePrefix, waitFor, waitForRedisLoaded } from '../helpers/redis-gateway.js'

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname
const APP = 'https://app.example.com'

interface Run { code: number, stdout: string, stderr: string }

async function corsgate (args: string[]): Promise<Run> {
  return await new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { env: { ...process.env, CORSGATE_CONFIG: '' } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}

/** The command in this process, output captured. */
async function inProcess (run: () => Promise<number>): Promise<Run> {
  const stdout: string[] = []
  const stderr: string[] = []
  const { log, error } = console
  console.log = (...a: unknown[]) => { stdout.push(a.join(' ')) }
  console.error = (...a: unknown[]) => { stderr.push(a.join(' ')) }
  try {
    return { code: await run(), stdout: stdout.join('\n'), stderr: stderr.join('\n') }
  } finally {
    console.log = log
    console.error = error
  }
}

t.test('observed, diff and --dry-run on what a gateway saw', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const dir = t.testdir()
  const liveFile = join(dir, 'live.yaml')
  const livePolicy = { origins: [APP, 'https://*.example.com'], deny: [] }
  writeFileSync(liveFile, testConfigYaml({ policies: { default: livePolicy }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: redis.url, keyPrefix: prefix } }))
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://partner.example.org')
  await redis.client.zadd(`${prefix}policy:default:origins:expiring`, Date.now() + 3_600_000, 'https://pr-7.preview.example.net')
  const gw = await startRedisGateway(redis, { policies: { default: livePolicy }, observe: { flushIntervalMs: 100 }, redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  const preflight = async (origin: string, n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await send(`${gw.url}/x`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'PUT' } })
  }
  await preflight(APP, 9)
  await preflight('https://shop.example.com', 4)
  await preflight('https://partner.example.org', 3)
  await preflight('https://pr-7.preview.example.net', 2)
  await preflight('https://evil.example.org', 5)
  await waitFor(async () => (await readObservedCounts(redis.client, prefix, 'default', 3_600_000, Date.now())).get('https://evil.example.org')?.outcomes[1] === 5, 30_000, 'the counts in Redis')

  // origins observed
  const table = await inProcess(async () => await runOriginsCommand(['observed', '--policy', 'default', '--config', liveFile], (f) => f!))
  t.equal(table.code, 0, table.stderr)
  t.match(table.stdout, /ORIGIN\s+REQUESTS\s+OUTCOME\s+REASON\s+LAST SEEN/)
  t.match(table.stdout, /https:\/\/app\.example\.com\s+9\s+allowed\s+origin_allowed\s+20\d\d-/)
  t.match(table.stdout, /https:\/\/evil\.example\.org\s+5\s+denied\s+origin_not_allowed/)
  const lines = table.stdout.split('\n').filter((l) => l.includes('https://'))
  t.same(lines.map((l) => l.trim().split(/\s+/)[0]), [APP, 'https://evil.example.org', 'https://shop.example.com', 'https://partner.example.org', 'https://pr-7.preview.example.net'], 'most requests first')
  const json = await inProcess(async () => await runOriginsCommand(['observed', '--policy', 'default', '--since', '1h', '--outcome', 'denied', '--json', '--config', liveFile], (f) => f!))
  const parsed = JSON.parse(json.stdout) as Record<string, any>
  t.same(Object.keys(parsed), ['policy', 'since', 'origins', 'other', 'invalid'])
  t.same(parsed.origins.map((o: Record<string, unknown>) => [o.origin, o.requests]), [['https://evil.example.org', 5]])
  const badOutcome = await corsgate(['origins', 'observed', '--policy', 'default', '--outcome', 'maybe', '--config', liveFile])
  t.equal(badOutcome.code, 2, 'bad input: exit 2')
  t.equal(badOutcome.stderr.trim().split('\n').length, 1, `one line: ${badOutcome.stderr.trim()}`)
  const noRedis = await inProcess(async () => await runOriginsCommand(['observed', '--policy', 'default', '--redis', 'redis://127.0.0.1:1', '--config', liveFile], (f) => f!))
  t.equal(noRedis.code, 1, 'Redis unreachable: exit 1')

  // diff: drop the wildcard, keep the Redis lists; the expiring entry keeps pr-7 allowed.
  const candidateFile = join(dir, 'candidate.yaml')
  writeFileSync(candidateFile, testConfigYaml({ policies: { default: { origins: [APP, 'https://evil.example.org'] } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: redis.url, keyPrefix: prefix } }))
  const diff = await corsgate(['diff', '--config', candidateFile, '--live', liveFile])
  t.equal(diff.code, 1, `an allowed → denied flip with traffic: exit 1\n${diff.stderr}`)
  t.match(diff.stdout, /REFUSED\s+policy default\s+https:\/\/shop\.example\.com\s+4 requests\s+allowed → denied/)
  t.match(diff.stdout, /changed\s+policy default\s+https:\/\/evil\.example\.org\s+5 requests\s+denied → allowed/)
  t.ok(diff.stdout.indexOf('shop.example.com') < diff.stdout.indexOf('evil.example.org'), 'refusals first')
  t.notMatch(diff.stdout, /partner|pr-7/, 'Redis entries, expiring one included, hold on both sides')
  const asJson = await inProcess(async () => await runDiffCommand(['--config', candidateFile, '--json']))
  t.equal(asJson.code, 1)
  const report = JSON.parse(asJson.stdout) as Record<string, any>
  t.equal(report.live, 'observed', 'without --live: the decisions the gateways made')
  t.same(report.flips.map((f: Record<string, unknown>) => [f.origin, f.requests, f.from, f.to]), [['https://shop.example.com', 4, 'allowed', 'denied'], ['https://evil.example.org', 5, 'denied', 'allowed']])
  const same = await inProcess(async () => await runDiffCommand(['--config', liveFile, '--live', liveFile]))
  t.equal(same.code, 0, 'no flip: exit 0')
  t.match(same.stdout, /no origin would change verdict/)
  const onlyGains = join(dir, 'gains.yaml')
  writeFileSync(onlyGains, testConfigYaml({ policies: { default: { ...livePolicy, origins: [...livePolicy.origins, 'https://evil.example.org'] } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: redis.url, keyPrefix: prefix } }))
  t.equal((await inProcess(async () => await runDiffCommand(['--config', onlyGains, '--live', liveFile]))).code, 0, 'flips that only allow more: exit 0')
  const badSince = await corsgate(['diff', '--config', candidateFile, '--since', 'soon'])
  t.equal(badSince.code, 2, 'bad input: exit 2')
  t.equal(badSince.stderr.trim().split('\n').length, 1)
  t.equal((await inProcess(async () => await runDiffCommand([]))).code, 2, '--config is required')

  // --dry-run: what one Redis edit would refuse, nothing written.
  const dry = await inProcess(async () => await runOriginsCommand(['deny', '--policy', 'default', 'https://*.example.org', '--dry-run', '--config', liveFile], (f) => f!))
  t.equal(dry.code, 1, dry.stderr)
  t.match(dry.stdout, /dry run: nothing written/)
  t.match(dry.stdout, /REFUSED\s+policy default\s+https:\/\/partner\.example\.org\s+3 requests\s+allowed → denied\s+\(origin_allowed https:\/\/partner\.example\.org → denylisted https:\/\/\*\.example\.org\)/)
  t.same(await redis.client.smembers(`${prefix}policy:default:deny`), [], 'nothing written')
  const removeExpiring = await inProcess(async () => await runOriginsCommand(['remove', '--policy', 'default', 'https://pr-7.preview.example.net', '--dry-run', '--config', liveFile], (f) => f!))
  t.equal(removeExpiring.code, 1)
  t.match(removeExpiring.stdout, /REFUSED\s+policy default\s+https:\/\/pr-7\.preview\.example\.net\s+2 requests/)
  t.equal(await redis.client.zcard(`${prefix}policy:default:origins:expiring`), 1, 'the expiring entry is still there')
  const harmless = await inProcess(async () => await runOriginsCommand(['remove', '--policy', 'default', 'https://nobody.example.net', '--dry-run', '--config', liveFile], (f) => f!))
  t.equal(harmless.code, 0)
  const dryAdd = await inProcess(async () => await runOriginsCommand(['add', '--policy', 'default', 'https://x.example.net', '--dry-run', '--config', liveFile], (f) => f!))
  t.equal(dryAdd.code, 2, '--dry-run is for remove and deny')
})
