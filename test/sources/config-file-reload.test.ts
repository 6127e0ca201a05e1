// The config file reloaded without a restart, on a real `corsgate start` process: SIGHUP, an
// edit of the file, and a Kubernetes-style ConfigMap update (the `..data` symlink swapped in
// the mounted folder). A bad file is logged and the running config kept; a setting read only
// at start is named as needing a restart; a reload never strands a running route.
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { testConfigYaml, type GatewayConfigInput } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startCliGateway, type CliGateway } from '../helpers/cli-process.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

t.setTimeout(120_000)

const preflight = async (gw: CliGateway, origin: string): Promise<number> =>
  (await send(`${gw.url}/`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } })).status

function config (upstream: Upstream, policy: Record<string, unknown>, extra: Partial<GatewayConfigInput> = {}): string {
  return testConfigYaml({ policies: { default: policy }, routes: [{ path: '/', upstream: upstream.url }], ...extra })
}

t.test('SIGHUP: a policy change is in force without a restart; report-only → enforce', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const dir = t.testdir()
  const file = join(dir, 'corsgate.yaml')
  writeFileSync(file, config(upstream, { origins: ['https://a.example.com'], mode: 'report-only' }))
  const gw = await startCliGateway(['--config', file])
  t.teardown(async () => { await gw.stop() })
  t.equal(await preflight(gw, 'https://evil.example.com'), 204, 'report-only serves a would-be denial')

  // Written in place with no change event awaited: SIGHUP is what asks for the reload.
  writeFileSync(file, config(upstream, { origins: ['https://b.example.com'], mode: 'enforce' }))
  const mark = gw.lines.length
  gw.child.kill('SIGHUP')
  const line = await gw.waitForLine((l) => l.msg === 'config reloaded: policies swapped in', mark)
  t.equal(line.file, file)
  t.equal(await preflight(gw, 'https://evil.example.com'), 403, 'enforce now')
  t.equal(await preflight(gw, 'https://b.example.com'), 204, 'the new origin is allowed')
  t.equal(await preflight(gw, 'https://a.example.com'), 403, 'the removed one is refused')
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text()
  t.match(metrics, /corsgate_policy_reloads_total\{source="file",result="ok"\} [1-9]/, 'counted as a file reload')
  t.ok(gw.child.exitCode === null, 'still the same process')
})

t.test('an edit of the file is picked up by the folder watch; a bad file keeps the running config', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const dir = t.testdir()
  const file = join(dir, 'corsgate.yaml')
  writeFileSync(file, config(upstream, { origins: ['https://a.example.com'] }))
  const gw = await startCliGateway(['--config', file])
  t.teardown(async () => { await gw.stop() })

  let mark = gw.lines.length
  // An editor's save: a new file renamed over the old one.
  writeFileSync(join(dir, 'corsgate.yaml.tmp'), config(upstream, { origins: ['https://a.example.com', 'https://c.example.com'] }))
  renameSync(join(dir, 'corsgate.yaml.tmp'), file)
  await gw.waitForLine((l) => l.msg === 'config reloaded: policies swapped in', mark)
  t.equal(await preflight(gw, 'https://c.example.com'), 204, 'the edit is in force')

  mark = gw.lines.length
  writeFileSync(file, 'policies:\n  default:\n    origins: ["https://*.co.uk"]\n    mode: strict\nroutes: [{ path: /, upstream: "http://127.0.0.1:9" }]\n')
  const failed = await gw.waitForLine((l) => /^config reload failed/.test(String(l.msg)), mark)
  t.equal(failed.level, 50, 'logged as an error')
  t.match(failed.problems.join('\n'), /policies\.default\.origins\[0\]: .*public suffix/, 'every problem named by its field')
  t.match(failed.problems.join('\n'), /policies\.default\.mode: must be one of/)
  t.equal(await preflight(gw, 'https://c.example.com'), 204, 'the running config is kept')
  const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text()
  t.match(metrics, /corsgate_policy_reloads_total\{source="file",result="error"\} 1/)
})

t.test('a ConfigMap update: the ..data symlink swapped in the mounted folder', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const dir = t.testdir()
  // The layout the kubelet makes: config.yaml → ..data/config.yaml, ..data → ..<timestamp>.
  mkdirSync(join(dir, '..2026_12_01_a'))
  writeFileSync(join(dir, '..2026_12_01_a', 'config.yaml'), config(upstream, { origins: ['https://a.example.com'] }))
  symlinkSync('..2026_12_01_a', join(dir, '..data'))
  symlinkSync('..data/config.yaml', join(dir, 'config.yaml'))
  const gw = await startCliGateway(['--config', join(dir, 'config.yaml')])
  t.teardown(async () => { await gw.stop() })
  t.equal(await preflight(gw, 'https://d.example.com'), 403)

  const mark = gw.lines.length
  mkdirSync(join(dir, '..2026_12_01_b'))
  writeFileSync(join(dir, '..2026_12_01_b', 'config.yaml'), config(upstream, { origins: ['https://d.example.com'] }))
  symlinkSync('..2026_12_01_b', join(dir, '..data_tmp'))
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  await gw.waitForLine((l) => l.msg === 'config reloaded: policies swapped in', mark)
  t.equal(await preflight(gw, 'https://d.example.com'), 204, 'the new ConfigMap is in force')
  t.equal(await preflight(gw, 'https://a.example.com'), 403)
})

t.test('settings read only at start are named as needing a restart; a route is never stranded', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const dir = t.testdir()
  const file = join(dir, 'corsgate.yaml')
  writeFileSync(file, config(upstream, { origins: ['https://a.example.com'] }))
  const gw = await startCliGateway(['--config', file])
  t.teardown(async () => { await gw.stop() })

  let mark = gw.lines.length
  writeFileSync(file, config(upstream, { origins: ['https://e.example.com'] }, { server: { port: 0, workers: 2 }, websocket: { idleTimeoutMs: 1000 } }))
  gw.child.kill('SIGHUP')
  const warning = await gw.waitForLine((l) => /need a restart/.test(String(l.msg)), mark)
  t.same(warning.settings, ['server.workers', 'websocket.idleTimeoutMs'], 'the changed settings, by name')
  await gw.waitForLine((l) => l.msg === 'config reloaded: policies swapped in', mark)
  t.equal(await preflight(gw, 'https://e.example.com'), 204, 'the policies still swap')

  // The running route uses policy "default": a file without it would strand the route.
  mark = gw.lines.length
  writeFileSync(file, testConfigYaml({ policies: { api: { origins: ['https://f.example.com'] } }, routes: [{ path: '/', upstream: upstream.url, policy: 'api' }] }))
  gw.child.kill('SIGHUP')
  const refused = await gw.waitForLine((l) => /^config reload failed/.test(String(l.msg)), mark)
  t.match(refused.problems[0], /routes\[0\]\.policy: the running route \/ uses policy "default", which the new file no longer defines/)
  t.equal(await preflight(gw, 'https://e.example.com'), 204, 'the running config is kept')
})

t.test('a policy added by a reload reads its Redis keys; Redis entries survive a reload', async (t) => {
  const { startRedis } = await import('../helpers/redis-server.js')
  const redis = await startRedis()
  t.teardown(redis.close)
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const dir = t.testdir()
  const file = join(dir, 'corsgate.yaml')
  const redisSection = { url: redis.url, keyPrefix: 'cfg:', pollIntervalMs: 60_000 }
  writeFileSync(file, testConfigYaml({ policies: { default: { origins: ['https://a.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }], redis: redisSection }))
  await redis.client.sadd('cfg:policy:default:origins', 'https://live.example.com')
  await redis.client.sadd('cfg:policy:api:origins', 'https://partner.example.org')
  const gw = await startCliGateway(['--config', file])
  t.teardown(async () => { await gw.stop() })
  await gw.waitForLine((l) => l.msg === 'redis whitelist loaded')
  const explain = async (origin: string, path: string): Promise<boolean> =>
    ((await (await fetch(`${gw.adminUrl}/explain?origin=${encodeURIComponent(origin)}&path=${path}&method=GET`)).json()) as { allowed: boolean }).allowed
  t.equal(await explain('https://live.example.com', '/'), true, 'the Redis entry is in force')

  // A new policy for a new route would need a restart (routes are read at start); a new
  // policy that the running route does not use is still compiled, with its Redis keys.
  const mark = gw.lines.length
  writeFileSync(file, testConfigYaml({ policies: { default: { origins: ['https://b.example.com'] }, api: { origins: [] } }, routes: [{ path: '/', upstream: upstream.url }], redis: redisSection }))
  gw.child.kill('SIGHUP')
  await gw.waitForLine((l) => l.msg === 'config reloaded: policies swapped in', mark)
  // `config`, or among the reasons of the reload that follows one under way.
  await gw.waitForLine((l) => l.msg === 'redis whitelist loaded' && String(l.reason).split(',').includes('config'), mark)
  t.equal(await explain('https://live.example.com', '/'), true, 'the Redis entry survived the reload')
  t.equal(await explain('https://b.example.com', '/'), true, 'the file change is in force')
  const policies = await (await fetch(`${gw.adminUrl}/policies`)).json() as { policies: Record<string, { origins: Array<{ pattern: string, source: string }> }> }
  t.same(policies.policies.api?.origins, [{ pattern: 'https://partner.example.org', source: 'redis' }], 'the new policy has its Redis origins (no poll needed)')
})
