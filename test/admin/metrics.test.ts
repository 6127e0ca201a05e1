// The request counter and duration histogram are counted by corsgate and handed to prom-client
// at scrape time (src/admin/metrics.ts): their exposition must be what prom-client's own
// Counter and Histogram print for the same requests.
import { Counter, Histogram, Registry } from 'prom-client'
import t from 'tap'
import { GatewayMetrics } from '../../src/admin/metrics.js'

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** The lines of one metric family in an exposition, sorted (series order is not part of the format). */
function family (text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name}_`) || line === `# TYPE ${name} counter` || line === `# TYPE ${name} histogram`).sort()
}

t.test('the request counter and duration histogram print as prom-client\'s own would', async (t) => {
  const ours = new GatewayMetrics({ defaultMetrics: false })
  const reference = new Registry()
  const counter = new Counter({ name: 'corsgate_requests_total', help: 'x', labelNames: ['route', 'kind', 'decision', 'reason'], registers: [reference] })
  const histogram = new Histogram({ name: 'corsgate_request_duration_seconds', help: 'x', labelNames: ['route', 'kind'], buckets: BUCKETS, registers: [reference] })

  // Bucket bounds exactly (le is "less than or equal"), between them, below the first, above the last.
  const requests: Array<[string, 'preflight' | 'actual' | 'websocket', string, string, number]> = [
    ['/', 'preflight', 'allowed', 'origin_allowed', 0.0005],
    ['/', 'preflight', 'allowed', 'origin_allowed', 0.00049],
    ['/', 'preflight', 'denied', 'origin_not_allowed', 0.0011],
    ['/', 'actual', 'allowed', 'origin_allowed', 30],
    ['/', 'actual', 'allowed', 'origin_allowed', 31],
    ['/', 'actual', 'no_origin', 'no_origin', 0.3],
    ['api.example.com/v1', 'websocket', 'allowed', 'origin_allowed', 2.5],
    ['api.example.com/v1', 'actual', 'allowed', 'origin_allowed', 0]
  ]
  for (const [route, kind, decision, reason, seconds] of requests) {
    ours.recordRequest(route, kind, decision, reason, seconds)
    counter.inc({ route, kind, decision, reason })
    histogram.observe({ route, kind }, seconds)
  }
  const mine = await ours.registry.metrics()
  const theirs = await reference.metrics()
  for (const name of ['corsgate_requests_total', 'corsgate_request_duration_seconds']) {
    const lines = family(mine, name)
    t.ok(lines.length > 2, `${name} is exposed`)
    t.same(lines, family(theirs, name), `${name}: the same lines`)
  }
  t.match(mine, /corsgate_request_duration_seconds_bucket\{le="0.0005",route="\/",kind="preflight"\} 2\n/, 'a duration on a bound counts in that bucket')

  // A scrape reads, it does not reset.
  t.same(family(await ours.registry.metrics(), 'corsgate_requests_total'), family(theirs, 'corsgate_requests_total'))
})
