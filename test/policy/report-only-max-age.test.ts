// A report-only trial must not outlive itself (issue 14, item 5): a would-deny preflight is
// served, but without the policy's lasting Access-Control-Max-Age, so browsers do not keep
// using that allowance for hours after the switch to enforce. Allowed preflights keep it.
import t from 'tap'
import { policySchema } from '../../src/config/schema.js'
import { compilePolicy, parseEntries, type CompiledPolicy, type EntryError } from '../../src/policy/compile.js'
import { decide } from '../../src/policy/decide.js'
import { preflightHeaders } from '../../src/policy/headers.js'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'

function policyOf (raw: Record<string, unknown>): CompiledPolicy {
  const config = policySchema.parse(raw)
  const errors: EntryError[] = []
  const toRaw = (list: string[]) => list.map((value, i) => ({ value, source: 'file', where: `policies.p.origins[${i}]` }))
  return compilePolicy({ name: 'p', config, allow: parseEntries(toRaw(config.origins), errors), deny: parseEntries(toRaw(config.deny), errors) }, errors)
}

t.test('preflightHeaders: no max-age on a would-deny answer, the policy\'s on an allowed one', async (t) => {
  const p = policyOf({ origins: ['https://app.example.com'], maxAge: 7200, mode: 'report-only' })
  const judge = (origin: string) => {
    const d = decide(p, { origin, selfOrigin: undefined, method: 'PUT', now: 0 })
    return { d, h: preflightHeaders(p, d, { requestHeaders: undefined, privateNetwork: false }) }
  }
  const refused = judge('https://stranger.example.org')
  t.equal(refused.d.outcome, 'would_deny')
  t.equal(refused.h['access-control-allow-origin'], 'https://stranger.example.org', 'still served: report-only')
  t.equal(refused.h['access-control-allow-credentials'], 'true')
  t.notOk('access-control-max-age' in refused.h, 'no lasting max-age')
  const allowed = judge('https://app.example.com')
  t.equal(allowed.h['access-control-max-age'], '7200', 'an allowed preflight keeps the policy\'s max-age')
})

t.test('through the gateway, as a new user would try it', async (t) => {
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'], maxAge: 7200, mode: 'report-only' } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] })
  t.teardown(gw.close)
  const preflight = async (origin: string) => await send(`${gw.url}/api`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'PUT' } })
  const refused = await preflight('https://stranger.example.org')
  t.equal(refused.status, 204)
  t.equal(refused.one('access-control-allow-origin'), 'https://stranger.example.org')
  t.equal(refused.one('access-control-max-age'), undefined, 'no Access-Control-Max-Age on a would-deny preflight')
  const allowed = await preflight('https://app.example.com')
  t.equal(allowed.one('access-control-max-age'), '7200')
})
