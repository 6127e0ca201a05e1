// Every shell block marked runnable in the docs (a fence opened with "```sh runnable") is
// run, in document order, against a real gateway (`corsgate start` on the shipped
// config/default.yaml, the way the walk-through starts it) with a real upstream and a real
// redis-server, so a command copied from the docs cannot rot. The docs say `localhost:8080`,
// `localhost:9090` and `redis://127.0.0.1:6379`; those are pointed at this test's own ports,
// and nothing else in a block is changed. `npx corsgate` runs the built package, so the test
// builds it first, as `npm ci` does.
import { spawn, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { cleanEnv, ROOT, startCliGateway } from './helpers/cli-process.js'
import { startRedis } from './helpers/redis-server.js'
import { startUpstream } from './helpers/upstream.js'

t.setTimeout(600_000)

interface Block { file: string, line: number, text: string }

/** The runnable blocks of one Markdown file, with the line each starts on. */
export function runnableBlocks (file: string): Block[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n')
  const out: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```sh runnable\s*$/.test(lines[i]!)) continue
    const start = i + 1
    const body: string[] = []
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!)
    out.push({ file, line: start, text: body.join('\n') })
  }
  return out
}

const files = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)]
const blocks = files.flatMap(runnableBlocks)

async function bash (script: string, env: Record<string, string>): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('the docs keep their runnable blocks', async (t) => {
  t.ok(blocks.filter((b) => b.file === 'README.md').length >= 3, 'the README walk-through has runnable blocks')
  t.ok(blocks.length >= 8, `${blocks.length} runnable blocks in all`)
  for (const b of blocks) t.notMatch(b.text, /\bnpm start\b|redis-server/, `${b.file}:${b.line} starts nothing long-running (the test provides the gateway and Redis)`)
})

t.test('every runnable block runs against a real gateway', async (t) => {
  const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' })
  t.equal(build.status, 0, `npm run build ${build.stderr}`)
  const redis = await startRedis()
  t.teardown(redis.close)
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  // `npm start` on the shipped config, with this test's ports, upstream and Redis.
  const gw = await startCliGateway(['--config', 'config/default.yaml'], {
    CORSGATE_HOST: '127.0.0.1',
    CORSGATE_PORT: '0',
    CORSGATE_ADMIN_PORT: '0',
    CORSGATE_UPSTREAM: upstream.url,
    CORSGATE_REDIS_URL: `${redis.url}/0`
  })
  t.teardown(async () => { await gw.stop() })
  await gw.waitForLine((l) => l.msg === 'redis whitelist loaded')
  const gwHost = gw.url.replace(/^http:\/\//, '')
  const adminHost = gw.adminUrl.replace(/^http:\/\//, '')
  const redisHostPort = redis.url.replace(/^redis:\/\//, '').replace(/\/.*$/, '')

  const outputs = new Map<string, string>()
  for (const block of blocks) {
    const script = block.text
      .replaceAll('localhost:8080', gwHost)
      .replaceAll('localhost:9090', adminHost)
      .replaceAll('redis://127.0.0.1:6379', `redis://${redisHostPort}`)
    const run = await bash(script, cleanEnv())
    t.equal(run.code, 0, `${block.file}:${block.line} exits 0\n${script}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`)
    outputs.set(`${block.file}:${block.line}`, run.stdout)
  }
  // What the walk-through promises its reader, checked on its output.
  const readme = blocks.filter((b) => b.file === 'README.md').map((b) => outputs.get(`${b.file}:${b.line}`) ?? '').join('\n')
  t.match(readme, /HTTP\/1\.1 204/, 'the allowed preflight gets 204')
  t.match(readme, /access-control-allow-origin: http:\/\/localhost:3000/i, 'with the origin echoed')
  t.match(readme, /"error":"cors_denied","reason":"origin_not_allowed"/, 'the refused one gets 403 cors_denied')
  t.match(readme, /DENIED: origin_not_allowed[\s\S]*exit 1 \(1 = denied\)/, 'check explains the denial')
  t.match(readme, /"allowed":true/, 'the origin added in Redis is allowed without a restart')
  t.equal(await redis.client.sismember('corsgate:policy:default:origins', 'https://app.example.com'), 1, 'written to the Redis set the docs name')
  const all = [...outputs.values()].join('\n')
  t.match(all, /version: 1\npolicies:\n {2}default:\n {4}origins:\n {6}- https:\/\/app\.example\.com/, 'the export holds what the walk-through added')
  t.match(all, /dry run: would add 1 entry for default/, 'and would restore it')
})
