// corsgate loads undici's Agent module alone (src/gateway/undici-agent.ts), not the package's
// index, which loads every part of undici and holds it in memory. If an undici release moves
// the module, the fallback to the index keeps corsgate working, and this test says so.
import { execFileSync } from 'node:child_process'
import t from 'tap'
import { Agent as Index, buildConnector as IndexConnector } from 'undici'
import { parseConfig } from '../../src/config/load.js'
import { Agent, buildConnector } from '../../src/gateway/undici-agent.js'
import { UpstreamRules } from '../../src/gateway/upstream-request.js'
import { testConfigYaml } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('the Agent module is the class undici exports', async (t) => {
  t.equal(Agent, Index)
  t.equal(buildConnector, IndexConnector)
})

t.test('starting the gateway loads undici\'s Agent module, not its index', async (t) => {
  // In a process of its own: this test file imports the index itself.
  const script = `
    await import('./src/server.ts')
    const { createRequire } = await import('node:module')
    const cache = Object.keys(createRequire(process.cwd() + '/').cache)
    console.log(JSON.stringify(cache.filter((f) => f.includes('/undici/')).map((f) => f.slice(f.lastIndexOf('/undici/')))))`
  const loaded = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]).toString()) as string[]
  t.ok(loaded.includes('/undici/lib/dispatcher/agent.js'), 'the Agent module is loaded')
  t.notOk(loaded.includes('/undici/index.js'), 'the index is not')
  t.notOk(loaded.some((f) => f.includes('/lib/web/fetch/')), 'nor fetch')
})

t.test('the agent corsgate builds dispatches to an upstream', async (t) => {
  const upstream = await startUpstream()
  t.teardown(async () => { await upstream.close() })
  const agent = new UpstreamRules(parseConfig(testConfigYaml({ routes: [{ path: '/', upstream: upstream.url }] }), 'test.yaml').config).createAgent(4)
  t.teardown(async () => { await agent.close() })
  const res = await agent.request({ origin: upstream.url, path: '/hello', method: 'GET' })
  t.equal(res.statusCode, 200)
  t.match(await res.body.text(), /hello/)
})
