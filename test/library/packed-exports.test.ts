// `npm pack` as a release makes it, installed into a scratch project as a user's app gets it:
// the `corsgate/fastify` and `corsgate/fastify-cors` exports resolve, run, and typecheck, and
// the examples of docs/library.md run from there against real upstreams.
// The scratch project's other packages are linked from this checkout's node_modules (the test
// runs without the registry); corsgate itself comes from the tarball only.
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import { io } from 'socket.io-client'
import t, { type Test } from 'tap'
import { corsHeaderNames, send } from '../helpers/http.js'
import { startSocketIoUpstream } from '../helpers/socketio-upstream.js'
import { startUpstream } from '../helpers/upstream.js'

const run = promisify(execFile)
const root = resolve(import.meta.dirname, '..', '..')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
const ORIGIN = 'https://app.example.com'
const EVIL = 'https://evil.example'

interface PackResult { filename: string, files: Array<{ path: string }> }

t.test('the packed tarball carries the exports with their types, and a scratch app imports them', async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'corsgate-pack-'))
  t.teardown(() => { rmSync(scratch, { recursive: true, force: true }) })
  // What `npm pack` would pack, built aside so this checkout's dist/ is left alone.
  const pkg = join(scratch, 'pkg')
  mkdirSync(pkg)
  for (const name of ['package.json', 'README.md', 'LICENSE', 'config']) cpSync(join(root, name), join(pkg, name), { recursive: true })
  await run(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist')])
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], { cwd: pkg })
  const [packed] = JSON.parse(stdout) as PackResult[]
  const files = new Set(packed!.files.map((f) => f.path))
  const manifest = (await import(join(root, 'package.json'), { with: { type: 'json' } })).default as { exports: Record<string, { types?: string, default?: string } | string> }
  for (const entry of ['./fastify', './fastify-cors', '.']) {
    const target = manifest.exports[entry] as { types: string, default: string }
    t.ok(files.has(target.default.slice(2)), `${entry}: ${target.default} is in the tarball`)
    t.ok(files.has(target.types.slice(2)), `${entry}: ${target.types} is in the tarball`)
  }
  t.notOk([...files].some((f) => f.startsWith('src/') || f.startsWith('test/')), 'no sources or tests in the tarball')

  const app = join(scratch, 'app')
  const modules = join(app, 'node_modules')
  mkdirSync(join(modules, 'corsgate'), { recursive: true })
  await run('tar', ['-xzf', join(scratch, packed!.filename), '-C', join(modules, 'corsgate'), '--strip-components=1'])
  for (const entry of readdirSync(join(root, 'node_modules'))) {
    if (entry === 'corsgate' || entry.startsWith('.')) continue
    symlinkSync(join(root, 'node_modules', entry), join(modules, entry))
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch-app', private: true, type: 'module' }))
  writeFileSync(join(app, 'main.mjs'), `
import Fastify from 'fastify'
import cors from '@fastify/cors'
import corsgate from 'corsgate/fastify'
import { corsgateDelegator } from 'corsgate/fastify-cors'
const config = { policies: { default: { origins: ['https://app.example.com'] } } }
const app = Fastify()
await app.register(corsgate, { config })
app.get('/', async () => 'ok')
const pre = await app.inject({ method: 'OPTIONS', url: '/', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PUT' } })
const denied = await app.inject({ url: '/', headers: { origin: 'https://evil.example' } })
const delegator = await corsgateDelegator({ config })
const other = Fastify()
await other.register(cors, { delegator })
other.get('/', async () => 'ok')
const delegated = await other.inject({ url: '/', headers: { origin: 'https://app.example.com' } })
await delegator.close()
console.log(JSON.stringify({ pre: [pre.statusCode, pre.headers['access-control-allow-origin']], denied: denied.statusCode, delegated: delegated.headers['access-control-allow-origin'] }))
`)
  const out = await run(process.execPath, ['main.mjs'], { cwd: app })
  t.same(JSON.parse(out.stdout.trim().split('\n').at(-1)!), { pre: [204, 'https://app.example.com'], denied: 403, delegated: 'https://app.example.com' }, 'both exports work from the installed package')

  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, files: ['app.ts'] }))
  writeFileSync(join(app, 'app.ts'), `
import Fastify from 'fastify'
import cors from '@fastify/cors'
import corsgate, { type CorsgatePluginOptions } from 'corsgate/fastify'
import { corsgateDelegator } from 'corsgate/fastify-cors'

const options: CorsgatePluginOptions = { config: 'corsgate.yaml', policy: (request) => request.headers.host === 'partners.example.com' ? 'partners' : undefined }
const app = Fastify()
await app.register(corsgate, options)
app.get('/explain', async (request) => app.corsgate.explain({ origin: String(request.query), path: '/' }).allowed)
app.addHook('onRequest', async (request) => { request.log.info({ reason: request.corsgate?.decision.reason }) })
// @ts-expect-error config is a path or the object a config file holds
await app.register(corsgate, { config: 42 })
await app.register(cors, { delegator: await corsgateDelegator({ config: { policies: { default: {} } } }) })
`)
  try {
    await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], { cwd: app })
    t.pass('a TypeScript app typechecks against the packed types')
  } catch (err) {
    t.fail(`tsc: ${(err as { stdout?: string }).stdout ?? String(err)}`)
  }
  t.ok(existsSync(join(modules, 'corsgate', 'dist', 'fastify.d.ts')))

  // The examples of docs/library.md, as a reader copies them, against real upstreams.
  for (const file of readdirSync(join(root, 'examples'))) cpSync(join(root, 'examples', file), join(app, file))
  const api = await startUpstream()
  t.teardown(api.close)
  const sockets = await startSocketIoUpstream()
  t.teardown(sockets.close)
  const gateway = await startExample(t, app, 'fastify-gateway.mjs', { API_UPSTREAM: api.url, SOCKET_UPSTREAM: sockets.url })
  const pre = await send(`${gateway}/api/users`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'PUT' } })
  t.equal(pre.status, 204, 'gateway example: the preflight is answered')
  t.equal(pre.one('access-control-max-age'), '600')
  const users = await send(`${gateway}/api/users`, { headers: { origin: ORIGIN } })
  t.equal(users.one('access-control-allow-origin'), ORIGIN, 'gateway example: the API answer carries CORS headers')
  t.equal(api.seen.at(-1)?.url, '/api/users')
  t.equal((await send(`${gateway}/api/users`, { headers: { origin: EVIL } })).status, 403, 'gateway example: a refused origin is 403')
  const socket = io(gateway, { reconnection: false, forceNew: true, transports: ['websocket'], extraHeaders: { origin: ORIGIN } })
  t.teardown(() => { socket.close() })
  t.equal(await new Promise((resolve, reject) => { socket.once('connect', () => resolve('connected')); socket.once('connect_error', reject) }), 'connected', 'gateway example: Socket.IO over websocket from an allowed origin')
  t.equal(await socket.emitWithAck('whoami').then((w: { origin: string }) => w.origin), ORIGIN, 'the upstream sees the Origin')
  const refused = io(gateway, { reconnection: false, forceNew: true, transports: ['websocket'], extraHeaders: { origin: EVIL } })
  t.teardown(() => { refused.close() })
  t.equal(await new Promise((resolve) => { refused.once('connect', () => resolve('connected')); refused.once('connect_error', () => resolve('refused')) }), 'refused', 'gateway example: refused from another origin')
  t.match((await send(`${gateway}/internal/corsgate/metrics`)).body, /corsgate_requests_total\{route="none",kind="websocket",decision="denied"/, 'gateway example: metrics mounted')

  const corsApp = await startExample(t, app, 'fastify-cors-app.mjs', {})
  const listed = await send(`${corsApp}/api/users`, { headers: { origin: 'https://admin.example.com' } })
  t.equal(listed.one('access-control-allow-origin'), 'https://admin.example.com', '@fastify/cors example: the wildcard origin allowed')
  t.same(corsHeaderNames(await send(`${corsApp}/api/users`, { headers: { origin: EVIL } })), [], '@fastify/cors example: no CORS headers for another origin')
})

t.test('docs/library.md shows the examples exactly as they are run', async (t) => {
  const doc = readFileSync(join(root, 'docs', 'library.md'), 'utf8')
  for (const file of readdirSync(join(root, 'examples'))) {
    const block = new RegExp('```js example=examples/' + file.replace('.', '\\.') + '\\n([^]*?)```').exec(doc)
    t.ok(block !== null, `${file} is shown in docs/library.md`)
    t.equal(block?.[1], readFileSync(join(root, 'examples', file), 'utf8'), `${file}: the doc's copy is the file`)
  }
})

/** Runs an example program in the scratch app on a free port; resolves with its URL once it listens. */
async function startExample (t: Test, cwd: string, file: string, env: Record<string, string>): Promise<string> {
  const child = spawn(process.execPath, [file], { cwd, env: { PATH: process.env.PATH ?? '', PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(async () => {
    if (child.exitCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  })
  const lines = createInterface({ input: child.stdout })
  for await (const line of lines) {
    const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)?.[1]
    if (url !== undefined) {
      // Keep reading so the child never blocks on a full pipe.
      lines.on('line', () => {})
      return url
    }
  }
  throw new Error(`${file} exited before listening (code ${String(child.exitCode)})`)
}
