// Open-loop load at a fixed rate (wrk2 is not packaged here): sends RATE requests per second,
// spread over 1 ms ticks, on a keep-alive undici pool, for DURATION seconds, and prints the
// latency percentiles as JSON. Latency runs from the moment a request is handed to the pool
// to the end of its body, so queueing inside the pool counts.
// usage: node bench/fixed-rate.mjs URL RATE DURATION_S [ORIGIN]
import { Pool } from 'undici'

const [url, rateArg, durationArg, origin] = process.argv.slice(2)
const rate = Number(rateArg)
const durationMs = Number(durationArg) * 1000
const target = new URL(url)
const pool = new Pool(target.origin, { connections: 32, pipelining: 1, keepAliveTimeout: 30_000 })
const headers = origin === undefined || origin === '' ? {} : { origin }
const path = `${target.pathname}${target.search}`

const latencies = []
let sent = 0
let errors = 0
let non2xx = 0
let inflight = 0

async function one () {
  inflight++
  const t0 = process.hrtime.bigint()
  try {
    const res = await pool.request({ path, method: 'GET', headers })
    await res.body.dump()
    if (res.statusCode < 200 || res.statusCode >= 300) non2xx++
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6)
  } catch {
    errors++
  } finally {
    inflight--
  }
}

const start = performance.now()
await new Promise((resolve) => {
  const timer = setInterval(() => {
    const elapsed = performance.now() - start
    if (elapsed >= durationMs) {
      clearInterval(timer)
      resolve()
      return
    }
    const due = Math.floor((elapsed / 1000) * rate)
    while (sent < due) { sent++; void one() }
  }, 1)
})
// eslint-disable-next-line no-unmodified-loop-condition -- the requests in flight change it
while (inflight > 0) await new Promise((resolve) => setTimeout(resolve, 5))
await pool.close()

latencies.sort((a, b) => a - b)
const pct = (p) => latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
const seconds = (performance.now() - start) / 1000
console.log(JSON.stringify({ rate, sent, completed: latencies.length, achieved: Math.round(latencies.length / seconds), errors, non2xx, p50: pct(50), p90: pct(90), p99: pct(99), max: latencies.at(-1) ?? NaN }))
