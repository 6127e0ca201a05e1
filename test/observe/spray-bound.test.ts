// The bound holds under a spray of 200k distinct origins: memory measured after a full GC in a
// child process (--expose-gc), `other` and `invalid` counted, and Redis gets one hash per
// policy and hour whose fields are bounded by maxOrigins, not by what clients sent.
import { execFile } from 'node:child_process'
import t from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { uniquePrefix } from '../helpers/redis-gateway.js'

const SCRIPT = new URL('../fixtures/observe/spray.ts', import.meta.url).pathname

t.test('200k distinct origins: rows stay at maxOrigins, heap does not grow, Redis stays small', async (t) => {
  const redis = await startRedis()
  t.teardown(redis.close)
  const prefix = uniquePrefix()
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--expose-gc', '--import', 'tsx', SCRIPT, redis.url, prefix], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => err === null ? resolve(stdout) : reject(new Error(`${err.message}\n${stderr}`)))
  })
  const r = JSON.parse(out.trim().split('\n').pop()!) as { tableBytes: number, sprayGrowthBytes: number, rows: number, other: number, invalid: number, garbage: number, flushed: { rows: number, requests: number } }
  t.comment(`1000 rows: ${(r.tableBytes / 1024).toFixed(0)} KiB; heap growth over 200k sprayed origins: ${(r.sprayGrowthBytes / 1024).toFixed(0)} KiB`)
  t.equal(r.rows, 1000, 'rows: exactly maxOrigins')
  t.equal(r.invalid, r.garbage, 'every garbage header in invalid')
  t.equal(r.other, 200_000 - r.garbage, 'every new valid origin past the bound in other')
  // 200k rows would take ~200× the 1000-row table; the spray must cost less than that table.
  t.ok(r.sprayGrowthBytes < Math.max(r.tableBytes, 512 * 1024), `the spray grew the heap by ${r.sprayGrowthBytes} bytes, less than the table itself (${r.tableBytes})`)
  t.equal(r.flushed.requests, 201_000, 'every request flushed')

  const keys = await redis.client.keys(`${prefix}*`)
  t.equal(keys.length, 1, 'one hash: one policy, one hour')
  const fields = await redis.client.hlen(keys[0]!)
  // Per row: one outcome, one reason, first, last, one route = 5 fields; plus other and invalid.
  t.ok(fields <= (1000 + 2) * 5, `fields bounded by maxOrigins (${fields})`)
  const hash = await redis.client.hgetall(keys[0]!)
  t.equal(Number(hash['(other) denied']), 200_000 - r.garbage)
  t.equal(Number(hash['(invalid) denied']), r.garbage)
  t.notOk(Object.keys(hash).some((f) => f.startsWith('https://spray-') || f.includes(',')), 'no sprayed or garbage origin stored')
})
