// `npm pack` as a release makes it, installed into a scratch project as a user's app gets it:
// the `corsgate/fastify` and `corsgate/fastify-cors` exports resolve, run, and typecheck.
// The scratch project's other packages are linked from this checkout's node_modules (the test
// runs without the registry); corsgate itself comes from the tarball only.
import { execFile } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const root = resolve(import.meta.dirname, '..', '..')
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

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
})
