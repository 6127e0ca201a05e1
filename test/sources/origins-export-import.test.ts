// `corsgate origins export` / `import` against a real redis-server: a Redis without
// persistence restarted empty is refilled from the file, expiring entries with their expiry;
// `--replace` makes Redis match the file; bad entries write nothing; and a write to a policy
// the config does not define is refused unless asked for (exit 2).
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { testConfigYaml } from '../helpers/gateway.js'
import { cleanEnv, ROOT } from '../helpers/cli-process.js'
import { startRedis } from '../helpers/redis-server.js'
import { startRedisGateway, uniquePrefix, waitForRedisLoaded, waitForVerdict } from '../helpers/redis-gateway.js'

t.setTimeout(300_000)

interface Run { code: number, stdout: string, stderr: string }

async function corsgate (args: string[], input?: string): Promise<Run> {
  return await new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: ROOT, env: cleanEnv() }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
    if (input !== undefined) child.stdin!.end(input)
  })
}

t.test('export, a Redis restarted empty, import: the same lists, expiries kept', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const dir = t.testdir()
  const config = join(dir, 'corsgate.yaml')
  writeFileSync(config, testConfigYaml({
    policies: { default: { origins: ['https://app.example.com'] }, api: { origins: [] } },
    routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }],
    redis: { url: redis.url, keyPrefix: prefix }
  }))
  const k = (policy: string, key: string): string => `${prefix}policy:${policy}:${key}`
  const expiry = Date.now() + 3 * 86_400_000 + 123
  await redis.client.sadd(k('api', 'origins'), 'https://partner.example.org', 'https://*.partner.example.org')
  await redis.client.sadd(k('api', 'deny'), 'https://evil.example.org')
  await redis.client.zadd(k('api', 'origins:expiring'), expiry, 'https://pr-7.preview.example.org', Date.now() - 1000, 'https://gone.example.org')
  await redis.client.sadd(k('default', 'origins'), 'https://admin.example.com')

  const file = join(dir, 'origins.yaml')
  const exported = await corsgate(['origins', 'export', '--config', config, '--output', file])
  t.equal(exported.code, 0, exported.stderr)
  t.match(exported.stderr, /exported 5 entries of 2 policies/)
  const text = readFileSync(file, 'utf8')
  t.match(text, /^# corsgate origins export/, 'says where it came from')
  t.notMatch(text, /gone\.example\.org/, 'an already-expired entry is not exported')
  t.same(parse(text), {
    version: 1,
    policies: {
      api: {
        origins: ['https://*.partner.example.org', 'https://partner.example.org'],
        deny: ['https://evil.example.org'],
        expiring: [{ origin: 'https://pr-7.preview.example.org', expiresAt: new Date(expiry).toISOString() }]
      },
      default: { origins: ['https://admin.example.com'], deny: [], expiring: [] }
    }
  }, 'sorted lists, the expiry as an ISO time')
  const stdout = await corsgate(['origins', 'export', '--config', config, '--policy', 'api'])
  t.same(Object.keys((parse(stdout.stdout) as { policies: object }).policies), ['api'], '--policy chooses; stdout without --output')

  // A Redis without persistence restarts empty.
  await redis.kill9()
  await redis.restart()
  t.equal(await redis.client.exists(k('api', 'origins')), 0, 'Redis came back empty')

  const gw = await startRedisGateway(redis, { policies: { api: { origins: [] } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9', policy: 'api' }], redisOptions: { keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  const imported = await corsgate(['origins', 'import', file, '--config', config])
  t.equal(imported.code, 0, imported.stderr)
  t.match(imported.stdout, /imported 5 entries for api, default: reload published to [1-9]/)
  t.same((await redis.client.smembers(k('api', 'origins'))).sort(), ['https://*.partner.example.org', 'https://partner.example.org'])
  t.same(await redis.client.smembers(k('api', 'deny')), ['https://evil.example.org'])
  t.equal(Number(await redis.client.zscore(k('api', 'origins:expiring'), 'https://pr-7.preview.example.org')), expiry, 'the expiry round-trips to the millisecond')
  await waitForVerdict(gw, 'https://pr-7.preview.example.org', true)

  // Round trip: exporting again gives the same lists.
  const again = await corsgate(['origins', 'export', '--config', config])
  t.same((parse(again.stdout) as { policies: unknown }).policies, (parse(text) as { policies: unknown }).policies, 'export → import → export is stable')

  // --replace: Redis becomes exactly the file (from standard input here).
  await redis.client.sadd(k('api', 'origins'), 'https://stray.example.org')
  const small = 'version: 1\npolicies:\n  api:\n    origins: ["HTTPS://Only.Example.org:443"]\n'
  const dry = await corsgate(['origins', 'import', '-', '--replace', '--dry-run', '--config', config], small)
  t.equal(dry.code, 0, dry.stderr)
  t.match(dry.stdout, /dry run: would replace the Redis lists with 1 entry for api/)
  t.equal(await redis.client.sismember(k('api', 'origins'), 'https://stray.example.org'), 1, '--dry-run writes nothing')
  const replaced = await corsgate(['origins', 'import', '-', '--replace', '--config', config], small)
  t.equal(replaced.code, 0, replaced.stderr)
  t.same(await redis.client.smembers(k('api', 'origins')), ['https://only.example.org'], 'normalised, and the stray entry gone')
  t.equal(await redis.client.exists(k('api', 'deny'), k('api', 'origins:expiring')), 0, 'lists the file leaves empty are emptied')
  t.same(await redis.client.smembers(k('default', 'origins')), ['https://admin.example.com'], 'a policy the file does not name is left alone')
  await waitForVerdict(gw, 'https://stray.example.org', false)
})

t.test('import checks everything before writing anything', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const dir = t.testdir()
  const config = join(dir, 'corsgate.yaml')
  writeFileSync(config, testConfigYaml({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: redis.url, keyPrefix: prefix } }))
  const bad = 'version: 1\npolicies:\n  default:\n    origins: ["https://fine.example.org", "https://*.co.uk"]\n    expiring:\n      - { origin: "https://pr.example.org", expiresAt: "next tuesday" }\n'
  const run = await corsgate(['origins', 'import', '-', '--config', config], bad)
  t.equal(run.code, 2)
  t.match(run.stderr, /nothing written/)
  t.match(run.stderr, /policies\.default\.expiring\[0\]\.expiresAt: must be an ISO 8601 time/)
  const run2 = await corsgate(['origins', 'import', '-', '--config', config], 'version: 1\npolicies:\n  default:\n    origins: ["https://fine.example.org", "https://*.co.uk"]\n')
  t.equal(run2.code, 2)
  t.match(run2.stderr, /policies\.default\.origins\[1\]: "https:\/\/\*\.co\.uk": .*public suffix/)
  t.equal(await redis.client.exists(`${prefix}policy:default:origins`), 0, 'not even the valid entry was written')
  const expired = await corsgate(['origins', 'import', '-', '--config', config], `version: 1\npolicies:\n  default:\n    expiring:\n      - { origin: "https://old.example.org", expiresAt: "${new Date(Date.now() - 60_000).toISOString()}" }\n`)
  t.equal(expired.code, 0, expired.stderr)
  t.match(expired.stdout, /0 entries for default; 1 expired entry skipped/)
  t.equal(await redis.client.exists(`${prefix}policy:default:origins:expiring`), 0)
})

t.test('a write to a policy the config does not define is refused unless asked for', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const dir = t.testdir()
  const config = join(dir, 'corsgate.yaml')
  writeFileSync(config, testConfigYaml({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: redis.url, keyPrefix: prefix } }))
  const key = `${prefix}policy:api:origins`
  for (const sub of ['add', 'deny']) {
    const run = await corsgate(['origins', sub, '--policy', 'api', 'https://a.example.org', '--config', config])
    t.equal(run.code, 2, `${sub}: exit 2`)
    t.match(run.stderr, /policy "api" is not defined in .*corsgate\.yaml \(it defines "default"\).*nothing written.*--allow-unknown-policy/)
  }
  t.equal(await redis.client.exists(key, `${prefix}policy:api:deny`), 0, 'no key created')
  const forced = await corsgate(['origins', 'add', '--policy', 'api', 'https://a.example.org', '--config', config, '--allow-unknown-policy'])
  t.equal(forced.code, 0, forced.stderr)
  t.match(forced.stderr, /warning: policy "api" is not defined/)
  t.same(await redis.client.smembers(key), ['https://a.example.org'], '--allow-unknown-policy writes')
  const cleanup = await corsgate(['origins', 'remove', '--policy', 'api', 'https://a.example.org', '--config', config])
  t.equal(cleanup.code, 0, 'removing from an unknown policy (cleaning up) needs no flag')
  const imported = await corsgate(['origins', 'import', '-', '--config', config], 'version: 1\npolicies:\n  api:\n    origins: ["https://b.example.org"]\n')
  t.equal(imported.code, 2, 'import to an unknown policy: exit 2')
  t.equal(await redis.client.exists(key), 0)
})
