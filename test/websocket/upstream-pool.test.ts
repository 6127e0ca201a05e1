// Round robin, ejection, sid stickiness, cookie fallback: the pool without a server.
import t from 'tap'
import { cookieValue, engineSid, isEngineHandshake, SidSniffer } from '../../src/gateway/balance/engine-io.js'
import { clientAddress, UpstreamPool } from '../../src/gateway/balance/upstream-pool.js'

t.test('round robin over the upstreams in rotation; ejected ones come back after ejectionMs', async (t) => {
  const pool = new UpstreamPool(['http://a', 'http://b', 'http://c'], { ejectionMs: 1000 })
  t.same([0, 1, 2, 0].map(() => pool.pick(undefined, undefined, 0)), [0, 1, 2, 0])
  pool.eject(1, 0)
  t.same([1, 2, 3, 4].map(() => pool.pick(undefined, undefined, 500)), [2, 0, 2, 0], 'b skipped while ejected')
  t.notOk(pool.inRotation(1, 999))
  t.ok(pool.inRotation(1, 1000))
  t.ok([1, 2, 3].map(() => pool.pick(undefined, undefined, 1000)).includes(1), 'b is tried again')
  pool.eject(0, 2000); pool.eject(1, 2000); pool.eject(2, 2000)
  t.same(new Set([1, 2, 3].map(() => pool.pick(undefined, undefined, 2500))), new Set([0, 1, 2]), 'all ejected: the rotation goes on over all')
})

t.test('with an injected clock: an ejected upstream gets nothing until ejectionMs has passed, then its share again', async (t) => {
  let clock = 1_700_000_000_000
  const pool = new UpstreamPool(['http://a', 'http://b'], { ejectionMs: 10_000, now: () => clock })
  t.same([1, 2, 3, 4].map(() => pool.pick(undefined, undefined)), [0, 1, 0, 1], 'round robin')
  pool.eject(1) // as the proxy does on a refused connection: no time given, the pool's clock
  t.notOk(pool.inRotation(1))
  t.same(Array.from({ length: 6 }, () => pool.pick(undefined, undefined)), [0, 0, 0, 0, 0, 0], 'no traffic to b while ejected')
  clock += 9_999
  t.notOk(pool.inRotation(1), 'still out 1 ms before the end')
  t.notOk(Array.from({ length: 6 }, () => pool.pick(undefined, undefined)).includes(1))
  t.not(pool.pick(undefined, pool.keys[1]), 1, 'not even for its cookie, without a session')
  clock += 1
  t.ok(pool.inRotation(1), 'back when ejectionMs has passed')
  const after = Array.from({ length: 6 }, () => pool.pick(undefined, undefined))
  t.equal(after.filter((i) => i === 1).length, 3, `b gets its share again (${after.join(',')})`)
  t.equal(pool.pick(undefined, pool.keys[1]), 1, 'and its cookie holds again')
  pool.eject(1)
  clock += 5_000
  pool.eject(1) // a second refusal restarts the ejection from now
  clock += 9_999
  t.notOk(pool.inRotation(1))
  clock += 1
  t.ok(pool.inRotation(1))
})

t.test('with an injected clock: sessions idle longer than sessionIdleMs are forgotten', async (t) => {
  let clock = 0
  const pool = new UpstreamPool(['http://a', 'http://b'], { ejectionMs: 1000, sessionIdleMs: 100, now: () => clock })
  pool.learn('s1', 1)
  clock = 60
  t.equal(pool.pick('s1', undefined), 1, 'seen again at 60')
  clock = 150
  pool.learn('s2', 0)
  t.equal(pool.sessionCount, 2, 's1 idle for 90 ms: kept')
  clock = 251
  pool.learn('s3', 0)
  t.equal(pool.sessionCount, 1, 's1 and s2 idle for over 100 ms: forgotten')
})

t.test('a learnt session is sticky, even to an ejected upstream; idle sessions are forgotten', async (t) => {
  const pool = new UpstreamPool(['http://a', 'http://b'], { ejectionMs: 1000, sessionIdleMs: 100 })
  pool.learn('s1', 1, 0)
  pool.eject(1, 0)
  t.equal(pool.pick('s1', undefined, 50), 1)
  pool.learn('s2', 0, 120) // s1 was seen at 50: kept
  t.equal(pool.sessionCount, 2)
  pool.learn('s3', 0, 300)
  t.equal(pool.sessionCount, 1, 's1 and s2 idle for over 100 ms')
})

t.test('the cookie names an upstream by a hash of its URL', async (t) => {
  const pool = new UpstreamPool(['http://a', 'http://b'], { ejectionMs: 1000 })
  const reordered = new UpstreamPool(['http://b', 'http://a'], { ejectionMs: 1000 })
  t.equal(pool.keys[0], reordered.keys[1])
  t.equal(pool.pick('unknown-sid', pool.keys[1], 0), 1)
  t.equal(pool.pick('unknown-sid', pool.keys[1], 0), 1)
  t.equal(pool.pick(undefined, 'garbage', 0), 0)
})

t.test('client-address: one address, one upstream; an ejected one passes to the next', async (t) => {
  const pool = new UpstreamPool(['http://a', 'http://b', 'http://c'], { ejectionMs: 1000, sticky: 'client-address' })
  const first = pool.pick(undefined, undefined, 0, '198.51.100.7')
  t.same([1, 2, 3].map(() => pool.pick(undefined, undefined, 0, '198.51.100.7')), [first, first, first])
  t.equal(pool.pick('unknown-sid', undefined, 0, '198.51.100.7'), first, 'an unknown sid goes where the address does')
  pool.eject(first, 0)
  t.equal(pool.pick(undefined, undefined, 10, '198.51.100.7'), (first + 1) % 3)
  const spread = new Set(Array.from({ length: 60 }, (_, i) => pool.pick(undefined, undefined, 5000, `10.0.${i}.1`)))
  t.equal(spread.size, 3, 'addresses spread over every upstream')
  t.equal(clientAddress('127.0.0.1', '203.0.113.9, 10.0.0.1', true), '203.0.113.9')
  t.equal(clientAddress('127.0.0.1', '203.0.113.9', false), '127.0.0.1', 'X-Forwarded-For only behind a trusted proxy')
})

t.test('engine.io request shapes', async (t) => {
  t.equal(engineSid('/socket.io/?EIO=4&transport=polling&sid=abc-DEF_1'), 'abc-DEF_1')
  t.equal(engineSid('/socket.io/?EIO=4&transport=polling'), undefined)
  t.equal(engineSid('/socket.io/?xsid=1'), undefined)
  t.ok(isEngineHandshake('/socket.io/?EIO=4&transport=polling&t=x'))
  t.notOk(isEngineHandshake('/socket.io/?EIO=4&transport=polling&sid=a'))
  t.notOk(isEngineHandshake('/socket.io/?EIO=4&transport=websocket'))
  t.equal(cookieValue('a=1; corsgate_upstream=k1; b=2', 'corsgate_upstream'), 'k1')
  t.equal(cookieValue(undefined, 'corsgate_upstream'), undefined)
})

t.test('SidSniffer reads the sid of v4 and v3 handshakes, also split across chunks, once', async (t) => {
  for (const body of ['0{"sid":"Ab1-_x","upgrades":["websocket"],"pingInterval":25000}', '96:0{"sid":"Ab1-_x","upgrades":[]}2:40']) {
    const sids: string[] = []
    const sniffer = new SidSniffer((sid) => sids.push(sid))
    for (const chunk of [body.slice(0, 7), body.slice(7), body]) sniffer.look(Buffer.from(chunk))
    t.same(sids, ['Ab1-_x'])
  }
  const sids: string[] = []
  const sniffer = new SidSniffer((sid) => sids.push(sid))
  sniffer.look(Buffer.alloc(2048, 'x'))
  sniffer.look(Buffer.from('0{"sid":"late"}'))
  t.same(sids, [], 'no sid past the first kilobyte')
})
