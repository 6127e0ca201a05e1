// Connection options: URL, password (URL, secret file, env; never logged), database number,
// TLS with a custom CA, Sentinel. Unit checks of the option builder, then real servers.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { configSchema } from '../../src/config/schema.js'
import { maskRedisUrl, redisConnectionSettings } from '../../src/sources/redis-connection.js'
import { startTestGateway } from '../helpers/gateway.js'
import { startRedis, startSentinel } from '../helpers/redis-server.js'
import { explainOrigin, uniquePrefix, waitForRedisLoaded, waitForVerdict } from '../helpers/redis-gateway.js'

const redisSection = (input: Record<string, unknown>) => configSchema.shape.redis.unwrap().parse(input)
const external = process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '' ? 'needs redis-server of its own (REDIS_URL is set)' : false

t.test('option builder', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-conn-'))
  const secret = join(dir, 'password')
  writeFileSync(secret, 's3cret-from-file\n')

  const fromUrl = redisConnectionSettings(redisSection({ url: 'redis://user:p%40ss@redis.internal:6380/3' }), {})
  t.match(fromUrl.options, { host: 'redis.internal', port: 6380, username: 'user', password: 'p@ss', db: 3 })
  t.equal(fromUrl.db, 3)
  t.equal(fromUrl.target, 'redis://user:***@redis.internal:6380/3', 'the target is masked')
  t.equal(fromUrl.options.tls, undefined)

  t.equal(redisConnectionSettings(redisSection({ url: 'redis://h', passwordFile: secret }), {}).options.password, 's3cret-from-file', 'secret file, trimmed')
  t.equal(redisConnectionSettings(redisSection({ url: 'redis://h' }), { CORSGATE_REDIS_PASSWORD: 'from-env' }).options.password, 'from-env', 'env var')
  t.equal(redisConnectionSettings(redisSection({ url: 'redis://:in-url@h', passwordFile: secret }), { CORSGATE_REDIS_PASSWORD: 'from-env' }).options.password, 'in-url', 'the URL wins')
  t.equal(redisConnectionSettings(redisSection({ url: 'redis://h', passwordFile: secret }), { CORSGATE_REDIS_PASSWORD: 'from-env' }).options.password, 's3cret-from-file', 'the file wins over the env')
  t.equal(redisConnectionSettings(redisSection({ url: 'redis://h', db: 5 }), {}).db, 5, 'db from the config when the URL has none')
  t.throws(() => redisConnectionSettings(redisSection({ url: 'redis://h', passwordFile: join(dir, 'missing') }), {}), { code: 'CORSGATE_REDIS_CONFIG', message: /redis\.passwordFile: cannot read .*ENOENT/ })
  t.throws(() => redisConnectionSettings(redisSection({ url: 'redis://h/zero' }), {}), /database number/)

  const tls = redisConnectionSettings(redisSection({ url: 'rediss://h' }), {})
  t.same(tls.options.tls, {}, 'rediss:// turns TLS on')
  const sentinel = redisConnectionSettings(redisSection({ sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }], name: 'mymaster', db: 2 }), { CORSGATE_REDIS_PASSWORD: 'pw' })
  t.match(sentinel.options, { sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }], name: 'mymaster', db: 2, password: 'pw' })
  t.equal(sentinel.target, 'sentinel mymaster@s1:26379,s2:26379/2')
  t.throws(() => redisSection({ sentinels: [{ host: 's1', port: 26379 }] }), /required with sentinels/)

  t.equal(maskRedisUrl('rediss://:pw@h:1/0'), 'rediss://:***@h:1/0')
  t.equal(maskRedisUrl('redis://tokenonly@h'), 'redis://***@h')
  t.equal(maskRedisUrl('redis://h:1'), 'redis://h:1')
})

t.test('an unreadable password file stops the start with a config error naming the field', async (t) => {
  await t.rejects(startTestGateway({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: 'redis://127.0.0.1:1', passwordFile: '/nonexistent/redis-password' } }), {
    code: 'CORSGATE_CONFIG_INVALID',
    message: /redis\.passwordFile: cannot read \/nonexistent\/redis-password: ENOENT/
  })
})

t.test('password from a secret file and from the env; never in a log line', { skip: external }, async (t) => {
  const password = 'correct-horse-battery'
  const redis = await startRedis({ password })
  t.teardown(redis.close)
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-conn-'))
  const secret = join(dir, 'redis-password')
  writeFileSync(secret, `${password}\n`)
  const prefix = uniquePrefix()
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://auth.example.org')

  const gw = await startTestGateway({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: `redis://127.0.0.1:${redis.port}/0`, passwordFile: secret, keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  t.equal((await explainOrigin(gw, 'https://auth.example.org')).allowed, true, 'authenticated with the secret file')

  process.env.CORSGATE_REDIS_PASSWORD = password
  t.teardown(() => { delete process.env.CORSGATE_REDIS_PASSWORD })
  const gw2 = await startTestGateway({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: `redis://127.0.0.1:${redis.port}/0`, keyPrefix: prefix } })
  t.teardown(gw2.close)
  await waitForRedisLoaded(gw2)
  t.equal((await explainOrigin(gw2, 'https://auth.example.org')).allowed, true, 'authenticated with CORSGATE_REDIS_PASSWORD')

  // In the URL, with a wrong password: the error is logged, the password is not.
  const gw3 = await startTestGateway({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: `redis://:wrong-${password}@127.0.0.1:${redis.port}/0`, keyPrefix: prefix } })
  t.teardown(gw3.close)
  await waitForVerdict(gw3, 'https://app.example.com', true)
  const logs = JSON.stringify([...gw.logs, ...gw2.logs, ...gw3.logs])
  t.notOk(logs.includes(password), 'no log line carries the password')
  t.match(logs, /redis:\/\/:\*\*\*@127\.0\.0\.1/, 'the URL is logged masked')
  const ready = await (await fetch(`${gw3.adminUrl}/readyz`)).json() as { sources: { redis: { target: string, state: string } } }
  t.equal(ready.sources.redis.state, 'stale')
  t.notOk(JSON.stringify(ready).includes(password), '/readyz does not show it either')
})

t.test('rediss:// with a custom CA file', { skip: external }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-tls-'))
  const f = (name: string): string => join(dir, name)
  const openssl = (args: string[]): void => { execFileSync('openssl', args, { stdio: 'ignore' }) }
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=corsgate-test-ca'])
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1'])
  writeFileSync(f('ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  openssl(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', '1', '-extfile', f('ext')])
  const redis = await startRedis({ tls: { certFile: f('server.crt'), keyFile: f('server.key'), caFile: f('ca.crt') } })
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://tls.example.org')

  const gw = await startTestGateway({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { url: redis.url, tlsCaFile: f('ca.crt'), keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  t.equal((await explainOrigin(gw, 'https://tls.example.org')).allowed, true, 'loaded over TLS, server verified against the CA file')
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://tls2.example.org')
  await redis.client.publish(`${prefix}reload`, 'default')
  await waitForVerdict(gw, 'https://tls2.example.org', true, 2000)
  t.pass('the subscriber connection works over TLS too')
})

t.test('Sentinel: the master is found through the sentinels', { skip: external }, async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const sentinel = await startSentinel(redis.port, 'corsgate-master')
  t.teardown(sentinel.close)
  const prefix = uniquePrefix()
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://sentinel.example.org')
  const gw = await startTestGateway({ routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }], redis: { sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: 'corsgate-master', keyPrefix: prefix } })
  t.teardown(gw.close)
  await waitForRedisLoaded(gw)
  t.equal((await explainOrigin(gw, 'https://sentinel.example.org')).allowed, true)
  const ready = await (await fetch(`${gw.adminUrl}/readyz`)).json() as { sources: { redis: { target: string } } }
  t.equal(ready.sources.redis.target, `sentinel corsgate-master@127.0.0.1:${sentinel.port}/0`)
})
