// A "*" inside a header list is not a header name (it would be sent, and ignored by browsers
// on credentialed requests); credentials in an upstream URL would be logged and shown.
import t from 'tap'
import { ConfigError, parseConfig } from '../../src/config/load.js'

function problems (yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml')
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

t.test('refused at load, naming the field', async (t) => {
  const p = problems(`
policies:
  default:
    origins: [https://app.example.com]
    allowHeaders: ["*", X-A]
    exposeHeaders: [X-B, "*"]
routes:
  - { path: /, upstream: "http://user:secret@127.0.0.1:8000" }
`)
  t.ok(p.some((l) => l.startsWith('policies.default.allowHeaders[0]: ') && l.includes('allowHeaders: "*"')), p.join('\n'))
  t.ok(p.some((l) => l.startsWith('policies.default.exposeHeaders[1]: ')), p.join('\n'))
  t.ok(p.some((l) => l.startsWith('routes[0].upstream: ') && l.includes('credentials')), p.join('\n'))
  t.notMatch(p.join('\n'), /secret/, 'the password is not echoed')
})

t.test('the whole-list "*" is still accepted', async (t) => {
  t.same(problems('policies:\n  default:\n    origins: [https://app.example.com]\n    allowHeaders: "*"\nroutes:\n  - { path: /, upstream: "http://127.0.0.1:8000" }\n'), [])
})
