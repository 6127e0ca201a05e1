// Where a `plugins: - name: X` is found (SPEC "Plugins (Fastify)"): as an import would from the
// config file's folder first, then from corsgate's own install, so a plugin installed next to
// corsgate (a derived image's `npm install`) serves a config kept anywhere else.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { startGateway } from '../../src/server.js'
import { testConfigYaml } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'

/** A folder outside the project: no node_modules in it or above it (t.testdir lives inside the project). */
function outsideFolder (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-plugins-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const resolvableFrom = (dir: string, name: string): boolean => {
  try {
    createRequire(join(dir, 'noop.js')).resolve(name)
    return true
  } catch {
    return false
  }
}

t.test('a plugin not installed next to the config file resolves from corsgate\'s own install', async (t) => {
  const dir = outsideFolder(t)
  t.notOk(resolvableFrom(dir, '@fastify/helmet'), 'precondition: @fastify/helmet cannot be found from the config file\'s folder')
  const upstream = await startUpstream()
  const file = join(dir, 'corsgate.yaml')
  writeFileSync(file, testConfigYaml({
    policies: { default: { origins: [ORIGIN] } },
    plugins: [{ name: '@fastify/helmet', options: { contentSecurityPolicy: false } }],
    routes: [{ path: '/', upstream: upstream.url }]
  }))
  const gw = await startGateway({ loaded: loadConfig(file, {}), logger: pino({ level: 'silent' }) })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/page`, { headers: { origin: ORIGIN } })
  t.equal(res.status, 200)
  t.equal(res.one('x-content-type-options'), 'nosniff', 'helmet, found in corsgate\'s node_modules, applies')
  t.equal(res.one('access-control-allow-origin'), ORIGIN)
})

t.test('a plugin installed next to the config file is preferred to corsgate\'s own copy', async (t) => {
  const dir = outsideFolder(t)
  // A package of the same name in the config's folder: a user's pinned or patched version.
  const pkg = join(dir, 'node_modules', '@fastify', 'helmet')
  mkdirSync(pkg, { recursive: true })
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@fastify/helmet', version: '0.0.0-local', type: 'module', main: 'index.js' }))
  writeFileSync(join(pkg, 'index.js'), 'export default async function localHelmet (app) { app.addHook(\'onSend\', async (_req, reply, payload) => { reply.header(\'x-helmet\', \'local\'); return payload }) }\n')
  const upstream = await startUpstream()
  const file = join(dir, 'corsgate.yaml')
  writeFileSync(file, testConfigYaml({ plugins: [{ name: '@fastify/helmet' }], routes: [{ path: '/', upstream: upstream.url }] }))
  const gw = await startGateway({ loaded: loadConfig(file, {}), logger: pino({ level: 'silent' }) })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await send(`${gw.url}/page`, { headers: { origin: ORIGIN } })
  t.equal(res.one('x-helmet'), 'local', 'the copy next to the config file was loaded')
  t.equal(res.one('x-content-type-options'), undefined, 'not corsgate\'s')
})
