// Large keys are read in SSCAN/ZSCAN pages (a 100k-member reply decoded in one go blocks the
// event loop), small ones in one MULTI, all under WATCH. Either way the whole list loads,
// expired members are left out, and edits or failures in the middle of a read never produce a
// state Redis never held. Edits are timed by wrapping the source's SSCAN; Redis is real.
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
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

/** A source started on `prefix`, once its first load is done; stopped when the test ends. */
async function startLoaded (t: Test, prefix: string): Promise<{ store: PolicyStore, source: RedisPolicySource }> {
  const started = start(prefix)
  t.teardown(async () => await started.source.stop())
  const first = new Promise((resolve) => started.source.once('loaded', resolve))
  started.source.start()
  await first
  return started
}

/**
 * Runs `after` once each SSCAN page has arrived, before the reader sees it: edits made there
 * land in the middle of a read. Wraps the real client's method; Redis itself is real.
 */
function afterEachSscanPage (t: Test, after: (key: string, cursor: string) => Promise<void>): void {
  const proto = Redis.prototype as unknown as { sscan: (...args: unknown[]) => Promise<[string, string[]]> }
  const sscan = proto.sscan
  t.teardown(() => { proto.sscan = sscan })
  proto.sscan = async function (this: Redis, ...args: unknown[]) {
    const reply = await sscan.apply(this, args)
    await after(String(args[0]), reply[0])
    return reply
  }
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
  const { store, source } = await startLoaded(t, prefix)
  t.equal(source.state.invalidEntries, 1, 'the list key is reported once')
  t.equal(store.snapshot.policies.get('default')!.allow.size, 8001)
})

/** The first load to end once `ready()` holds (a start-up read may still be finishing before it). */
async function loadOnce (source: RedisPolicySource, ready: () => boolean): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => { if (ready()) { source.off('loaded', done); resolve() } }
    source.on('loaded', done)
  })
}

t.test('edits made while a paged read runs never combine into a state Redis never held', async (t) => {
  // A large allow list holding a wildcard, a small deny list holding one of its hosts. Ops then
  // remove the wildcard and undeny the host. A read that saw the allow list from before and
  // the deny list from after would let https://evil.example.com through: it must never happen.
  const prefix = uniquePrefix()
  const base = `${prefix}policy:default`
  await fill(`${base}:origins`, [...Array.from({ length: 8000 }, (_, i) => `https://app-${i}.example.org`), 'https://*.example.com'])
  await redis.client.sadd(`${base}:deny`, 'https://evil.example.com')
  const { store, source } = await startLoaded(t, prefix)
  t.notOk(allowed(store, 'https://evil.example.com'), 'denied before the edit')

  // The edit lands once the read has taken the last page of the allow list (so the wildcard
  // was read) and before it reads the deny list.
  let edited = false
  afterEachSscanPage(t, async (_key, cursor) => {
    if (edited || cursor !== '0') return
    edited = true
    await redis.client.srem(`${base}:origins`, 'https://*.example.com')
    await redis.client.srem(`${base}:deny`, 'https://evil.example.com')
  })
  const everSwapped: boolean[] = []
  store.on('swap', () => everSwapped.push(allowed(store, 'https://evil.example.com')))
  // The interrupted read starts again by itself.
  const loaded = loadOnce(source, () => edited)
  source.requestReload('test')
  await loaded
  t.ok(edited, 'the edit landed in the middle of a read')
  t.same(everSwapped.filter((x) => x), [], 'no snapshot swapped in ever allowed the denied host')
  t.notOk(allowed(store, 'https://evil.example.com'), 'after the edit: no wildcard, so not allowed')
  t.notOk(allowed(store, 'https://www.example.com'), 'the removed wildcard is gone')
  t.ok(allowed(store, 'https://app-7999.example.org'), 'the rest of the list is in force')
})

t.test('a read that keeps being interrupted fails, and the last good whitelist stays', async (t) => {
  const prefix = uniquePrefix()
  const base = `${prefix}policy:default`
  await fill(`${base}:origins`, Array.from({ length: 8000 }, (_, i) => `https://app-${i}.example.org`))
  const { store, source } = await startLoaded(t, prefix)
  const version = store.snapshot.version

  // Every read is interrupted: an edit after each one's last page.
  let edits = 0
  afterEachSscanPage(t, async (_key, cursor) => {
    if (cursor === '0') await redis.client.sadd(`${base}:origins`, `https://new-${++edits}.example.org`)
  })
  const failed = new Promise<Error>((resolve) => source.once('loadError', resolve))
  source.requestReload('test')
  const err = await failed
  t.match(err.message, /changed during 3 reads in a row/)
  t.ok(edits >= 3, `every read was interrupted (${edits} edits)`)
  t.equal(store.snapshot.version, version, 'nothing was swapped in')
  t.ok(allowed(store, 'https://app-7999.example.org'), 'the last good whitelist is in force')
  t.equal(source.state.stale, true, 'the source says it is stale')
})

t.test('a key that changes type during a paged read is reported, and the rest loads', async (t) => {
  const prefix = uniquePrefix()
  const base = `${prefix}policy:default`
  await fill(`${base}:origins`, Array.from({ length: 8000 }, (_, i) => `https://app-${i}.example.org`))
  await fill(`${base}:deny`, Array.from({ length: 6000 }, (_, i) => `https://x-${i}.example.net`))
  const { store, source } = await startLoaded(t, prefix)

  // After the first page of the deny key, it becomes a string.
  let changed = false
  afterEachSscanPage(t, async (key) => {
    if (changed || key !== `${base}:deny`) return
    changed = true
    await redis.client.multi().del(key).set(key, 'oops').exec()
  })
  const loaded = loadOnce(source, () => changed)
  source.requestReload('test')
  await loaded
  t.equal(source.state.invalidEntries, 1, 'the string key is reported')
  t.equal(source.state.entries.deny, 0, 'no half-read deny list is kept')
  t.ok(allowed(store, 'https://app-7999.example.org'), 'the allow list loads')
})

// Last in this file: it kills the Redis server.
t.test('Redis dying in the middle of a paged read keeps the last good whitelist', { skip: redis.external ? 'needs a redis-server of its own (REDIS_URL is set)' : false }, async (t) => {
  const prefix = uniquePrefix()
  const base = `${prefix}policy:default`
  await fill(`${base}:origins`, Array.from({ length: 8000 }, (_, i) => `https://app-${i}.example.org`))
  const { store, source } = await startLoaded(t, prefix)
  const version = store.snapshot.version

  let killed = false
  afterEachSscanPage(t, async () => {
    if (killed) return
    killed = true
    await redis.kill9()
  })
  const failed = new Promise<Error>((resolve) => source.once('loadError', resolve))
  source.requestReload('test')
  await failed
  t.ok(killed, 'Redis died after the first page')
  t.equal(store.snapshot.version, version, 'nothing was swapped in')
  t.ok(allowed(store, 'https://app-7999.example.org'), 'the last good whitelist is in force')
  t.equal(source.state.stale, true, 'the source says it is stale')
})
