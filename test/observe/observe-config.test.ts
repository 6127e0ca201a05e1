// The `observe` section (SPEC.md "Observed origins"): on by default with the documented
// defaults, strict, and every bad value named by its field.
import t from 'tap'
import { ConfigError, parseConfig } from '../../src/config/load.js'
import { testConfigYaml } from '../helpers/gateway.js'

const base = { policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] }

function problems (observe: Record<string, unknown>): string[] {
  try {
    parseConfig(testConfigYaml({ ...base, observe }), 'x.yaml')
    return []
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
}

t.test('defaults: on, 10000 origins, 5 s flushes, 7 days kept', async (t) => {
  t.same(parseConfig(testConfigYaml(base), 'x.yaml').config.observe, { enabled: true, maxOrigins: 10_000, flushIntervalMs: 5000, retention: '7d' })
  t.same(parseConfig(testConfigYaml({ ...base, observe: { enabled: false, maxOrigins: 50, flushIntervalMs: 1000, retention: '36h' } }), 'x.yaml').config.observe, { enabled: false, maxOrigins: 50, flushIntervalMs: 1000, retention: '36h' })
})

t.test('bad values are named by their field', async (t) => {
  t.match(problems({ maxOrigins: 0 }), [/^observe\.maxOrigins: /])
  t.match(problems({ maxOrigins: 1.5 }), [/^observe\.maxOrigins: /])
  t.match(problems({ flushIntervalMs: 10 }), [/^observe\.flushIntervalMs: /])
  t.match(problems({ retention: 'a week' }), [/^observe\.retention: must be a duration with a unit/])
  t.match(problems({ retention: '0d' }), [/^observe\.retention: /])
  t.match(problems({ enabled: 'yes' }), [/^observe\.enabled: /])
  t.match(problems({ maxorigins: 10 }), [/^observe: unknown key "maxorigins"/])
})
