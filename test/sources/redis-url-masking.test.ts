// Regression: a password holding `/`, `+` or `@` typed unencoded must never reach a log line,
// `/readyz` or an error message. The mask runs to the LAST `@`; a URL that does not parse is
// never printed at all.
import t from 'tap'
import { configSchema } from '../../src/config/schema.js'
import { maskRedisUrl, redisConnectionSettings } from '../../src/sources/redis-connection.js'
import { startTestGateway } from '../helpers/gateway.js'

const redisSection = (input: Record<string, unknown>) => configSchema.shape.redis.unwrap().parse(input)

t.test('the mask runs from scheme:// to the last @', async (t) => {
  t.equal(maskRedisUrl('redis://:ab/cd+ef@host:6379/0'), 'redis://:***@host:6379/0', 'a "/" in the password does not end the mask')
  t.equal(maskRedisUrl('redis://user:p@ss@host'), 'redis://user:***@host', 'an "@" in the password does not end the mask')
  t.equal(maskRedisUrl('rediss://user:a/b@c:d@host:6380/2'), 'rediss://user:***@host:6380/2')
  t.equal(maskRedisUrl('redis://p@ss:word@host'), 'redis://***@host', 'an odd username is masked whole')
  t.equal(maskRedisUrl('redis://to/ken@host'), 'redis://***@host', 'a lone token is masked whole')
  t.equal(maskRedisUrl('REDIS://user:pw@host'), 'REDIS://user:***@host')
  t.equal(maskRedisUrl('redis://host:6379/0'), 'redis://host:6379/0', 'nothing to mask')
})

t.test('the target of a parsed URL holding "@" in its password is masked', async (t) => {
  const settings = redisConnectionSettings(redisSection({ url: 'redis://user:p@ss@redis.internal:6380/1' }), {})
  t.equal(settings.options.password, 'p@ss', 'the password still reaches ioredis')
  t.equal(settings.target, 'redis://user:***@redis.internal:6380/1')
  t.notMatch(settings.target, /ss@/)
})

t.test('a URL that fails to parse is never printed', async (t) => {
  const url = 'redis://:ab/cd+ef@host'
  t.throws(() => redisConnectionSettings(redisSection({ url }), {}), {
    code: 'CORSGATE_REDIS_CONFIG',
    message: 'redis.url: invalid redis URL (not shown: it may contain a password)'
  })
  const err = await startTestGateway({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url } }).then(() => undefined, (e: Error) => e)
  t.ok(err, 'the start is refused')
  t.match(err?.message, /invalid redis URL \(not shown: it may contain a password\)/)
  t.notMatch(err?.message, /ab\/cd|cd\+ef/, 'no part of the password in the error')
})
