// Large keys are read in SSCAN/ZSCAN pages (a 100k-member reply decoded in one go blocks the
// event loop), small ones in one MULTI. Either way the whole list loads, expired members are
// left out, and an edit that lands while a paged read runs is in force after the follow-up.
import t from 'tap'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { parseConfig } from '../../src/config/load.js'
import { PolicyStore } from '../../src/sources/policy-store.js'
import { RedisPolicySource } from '../../src/sources/redis.js'
import { uniquePrefix } from '../helpers/redis-gateway.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'

const redis = await startRedis()
t.teardown(redis.close)

async function calls (r: TestRedis, command: string): Promise<number> {
  const info = await r.client.info('commandstats')
  const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)
  return Number(m?.[1] ?? 0)
}

function start (prefix: string): { store: PolicyStore, source: RedisPolicySource } {
  const loaded = parseConfig(stringify({
    redis: { url: redis.url, keyPrefix: prefix, pollIntervalMs: 600_000 },
    policies: { default: { origins: ['https://file.example.com'] } },
    routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }]
  }), 'test.yaml')
  const store = new PolicyStore(loaded)
  const source = new RedisPolicySource({ redis: loaded.config.redis!, store, logger: pino({ level: 'silent' }) })
  return { store, source }
}

const allowed = (store: PolicyStore, origin: string): boolean =>
  store.snapshot.policies.get('default')!.allow.match(origin, Date.now()) !== undefined &&
  store.snapshot.policies.get('default')!.deny.match(origin, Date.now()) === undefined

async function fill (key: string, values: string[]): Promise<void> {
  for (let i = 0; i < values.length; i += 5000) await redis.client.sadd(key, ...values.slice(i, i + 5000))
}

t.test('a large list is read in pages and loads whole', async (t) => {
  const prefix = uniquePrefix()
  const base = `${prefix}policy:default`
  const allow = Array.from({ length: 12_000 }, (_, i) => `https://app-${i}.example.com`)
  await fill(`${base}:origins`, allow)
  await redis.client.sadd(`${base}:deny`, 'https://app-7.example.com')
  const now = Date.now()
  const expiring: Array<string | number> = []
  for (let i = 0; i < 6000; i++) expiring.push(i % 3 === 0 ? now - 1000 : now + 3_600_000, `https://pr-${i}.example.org`)
  await redis.client.zadd(`${base}:origins:expiring`, ...expiring)

  const { store, source } = start(prefix)
  t.teardown(async () => await source.stop())
  const scansBefore = await calls(redis, 'sscan') + await calls(redis, 'zscan')
  const loaded = new Promise((resolve) => source.once('loaded', resolve))
  source.start()
  await loaded
  t.ok(await calls(redis, 'sscan') + await calls(redis, 'zscan') - scansBefore >= 12, 'the large keys were read in pages')

  t.same(source.state.entries, { allow: 12_000, deny: 1, expiring: 4000 }, 'every member counted once; expired members left out')
  const policy = store.snapshot.policies.get('default')!
  t.equal(policy.allow.size, 1 + 12_000 + 4000, 'file + Redis + unexpired expiring entries')
  t.ok(allowed(store, 'https://app-11999.example.com'), 'the last member is in force')
  t.ok(allowed(store, 'https://pr-1.example.org'), 'an unexpired expiring member is in force')
  t.notOk(allowed(store, 'https://pr-3.example.org'), 'an expired member is not')
  t.notOk(allowed(store, 'https://app-7.example.com'), 'deny still wins over a paged allow list')
  t.ok(allowed(store, 'https://file.example.com'), 'file origins remain')
})

t.test('small keys are read in one MULTI, without SCAN', async (t) => {
  const prefix = uniquePrefix()
  await redis.client.sadd(`${prefix}policy:default:origins`, 'https://one.example.com', 'https://two.example.com')
  const { store, source } = start(prefix)
  t.teardown(async () => await source.stop())
  const scansBefore = await calls(redis, 'sscan') + await calls(redis, 'zscan')
  const smembersBefore = await calls(redis, 'smembers')
  const loaded = new Promise((resolve) => source.once('loaded', resolve))
  source.start()
  await loaded
  t.equal(await calls(redis, 'sscan') + await calls(redis, 'zscan'), scansBefore, 'no SCAN for a small list')
  t.ok(await calls(redis, 'smembers') > smembersBefore, 'read with SMEMBERS')
  t.ok(allowed(store, 'https://two.example.com'))
})

t.test('a large key of the wrong type is reported and skipped; the rest loads', async (t) => {
  const prefix = uniquePrefix()
  const base = `${prefix}policy:default`
  await fill(`${base}:origins`, Array.from({ length: 8000 }, (_, i) => `https://big-${i}.example.com`))
  await redis.client.rpush(`${base}:deny`, ...Array.from({ length: 8000 }, (_, i) => `https://x-${i}.example.com`))
  const { store, source } = start(prefix)
  t.teardown(async () => await source.stop())
  const loaded = new Promise((resolve) => source.once('loaded', resolve))
  source.start()
  await loaded
  t.equal(source.state.invalidEntries, 1, 'the list key is reported once')
  t.equal(store.snapshot.policies.get('default')!.allow.size, 8001)
})

t.test('an edit made while a paged read runs is in force after the follow-up read', async (t) => {
  const prefix = uniquePrefix()
  const key = `${prefix}policy:default:origins`
  await fill(key, Array.from({ length: 40_000 }, (_, i) => `https://app-${i}.example.com`))
  const { store, source } = start(prefix)
  t.teardown(async () => await source.stop())
  const first = new Promise((resolve) => source.once('loaded', resolve))
  source.start()
  await first

  // MONITOR shows the source's commands: the edit is made once its first SSCAN page was sent.
  const monitor = await redis.client.monitor()
  t.teardown(() => monitor.disconnect())
  const seen: string[] = []
  const scanning = new Promise<void>((resolve) => {
    monitor.on('monitor', (_time: string, args: string[]) => {
      const command = String(args[0]).toLowerCase()
      if (command === 'sscan' || command === 'sadd') seen.push(command)
      if (command === 'sscan') resolve()
    })
  })
  // Two reads: the one the edit interrupted, then the follow-up its reload request asks for.
  const twoReads = new Promise<void>((resolve) => {
    let loads = 0
    source.on('loaded', () => { if (++loads === 2) resolve() })
  })
  source.requestReload('test')
  await scanning
  await redis.client.sadd(key, 'https://late.example.com')
  await redis.client.srem(key, 'https://app-3.example.com')
  // What the reload channel or a keyspace event does for this edit.
  source.requestReload('channel')
  await twoReads
  t.ok(seen.lastIndexOf('sscan') > seen.indexOf('sadd'), 'the edit landed while the paged read was still running')
  t.ok(allowed(store, 'https://late.example.com'), 'the added origin is in force')
  t.notOk(allowed(store, 'https://app-3.example.com'), 'the removed origin is not')
})
