// The Grafana dashboard the chart ships (helm/corsgate/dashboards/corsgate.json): every PromQL
// expression parses (promtool, from Debian's `prometheus` package), names only metrics a
// running gateway's /metrics exposes (the chart's alerts too), and groups by no origin label.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { findPromtool } from '../helpers/tools.js'
import { stringify } from 'yaml'
import { ROOT } from '../helpers/cli-process.js'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const DASHBOARD = join(ROOT, 'helm', 'corsgate', 'dashboards', 'corsgate.json')

interface Panel { title: string, type: string, targets?: Array<{ expr: string, legendFormat?: string }>, panels?: Panel[] }

function exprsOf (panels: Panel[]): Array<{ title: string, expr: string, legend: string }> {
  return panels.flatMap((p) => [...(p.targets ?? []).map((x) => ({ title: p.title, expr: x.expr, legend: x.legendFormat ?? '' })), ...exprsOf(p.panels ?? [])])
}

/** Grafana's own variables, as Grafana would put them in before sending the query. */
function asPrometheusSees (expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$__interval', '1m')
}

/** Metric names in `/metrics` text, with the series names a histogram or summary family adds. */
function exposedNames (text: string): Set<string> {
  const names = new Set<string>()
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string]
    names.add(name)
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s)
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s)
  }
  return names
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[], templating: { list: Array<{ name: string, definition?: string }> } }
const exprs = exprsOf(dashboard.panels)

t.test('the dashboard covers what the chart promises', async (t) => {
  const all = exprs.map((e) => e.expr).join('\n')
  for (const metric of ['corsgate_requests_total', 'corsgate_request_duration_seconds_bucket', 'corsgate_upstream_errors_total', 'corsgate_policy_reloads_total',
    'corsgate_policy_source_last_load_timestamp_seconds', 'corsgate_redis_connected', 'corsgate_open_websockets', 'corsgate_observed_dropped_total']) {
    t.ok(all.includes(metric), `a panel reads ${metric}`)
  }
  t.match(all, /histogram_quantile\(0\.99,/, 'latency percentiles from the histogram')
  t.match(all, /kind="preflight"/, 'preflight share')
  t.match(all, /sum by \(decision, reason\)/, 'requests by outcome and reason')
})

t.test('no origin label anywhere', async (t) => {
  for (const { title, expr, legend } of exprs) {
    t.notMatch(expr, /\borigin\b/, `${title}: expr`)
    t.notMatch(legend, /\borigin\b/, `${title}: legend`)
  }
})

t.test('every expression parses', async (t) => {
  const promtool = findPromtool()
  if (promtool === null) {
    if (process.env.CORSGATE_REQUIRE_PROMTOOL === '1') t.fail('promtool not installed (apt-get install prometheus) and CORSGATE_REQUIRE_PROMTOOL=1')
    else t.comment('promtool not installed (apt-get install prometheus): expressions not parsed')
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-dashboard-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // promtool parses rule files: each expression becomes a recording rule of its own.
  const exprsToCheck = [...exprs.map((e) => e.expr), ...dashboard.templating.list.flatMap((v) => v.definition === undefined ? [] : [/^label_values\((.*), \w+\)$/.exec(v.definition)?.[1] ?? v.definition])]
  const rules = { groups: [{ name: 'dashboard', rules: exprsToCheck.map((expr, i) => ({ record: `corsgate_dashboard:expr_${i}`, expr: asPrometheusSees(expr) })) }] }
  const file = join(dir, 'dashboard-rules.yaml')
  writeFileSync(file, stringify(rules))
  const checked = spawnSync(promtool, ['check', 'rules', file], { encoding: 'utf8' })
  t.equal(checked.status, 0, `promtool check rules: ${checked.stdout}${checked.stderr}`)
  t.match(checked.stdout, new RegExp(`SUCCESS: ${exprsToCheck.length} rules found`))
})

t.test('every metric it names is one /metrics exposes', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  await send(`${gw.url}/x`, { headers: { origin: 'https://app.example.com' } })
  const exposed = exposedNames((await send(`${gw.adminUrl}/metrics`)).body)
  t.ok(exposed.has('corsgate_requests_total'), 'the scrape was read')
  for (const { title, expr } of exprs) {
    const names = [...expr.matchAll(/\b([a-z_:][a-z0-9_:]*)\s*(?=\{|\[)/g)].map((m) => m[1]!).filter((n) => !['by', 'without', 'on', 'ignoring'].includes(n))
    t.ok(names.length > 0, `${title}: names a metric`)
    for (const name of names) t.ok(exposed.has(name), `${title}: ${name} is exposed`)
  }
  // The alerts too (the chart's template text; kube-state-metrics' series are not ours).
  const rules = readFileSync(join(ROOT, 'helm', 'corsgate', 'templates', 'prometheusrule.yaml'), 'utf8')
  const named = new Set([...rules.matchAll(/\b(corsgate_[a-z0-9_]+)\{/g)].map((m) => m[1]!))
  t.ok(named.size >= 5, 'the rules name corsgate metrics')
  for (const name of named) t.ok(exposed.has(name), `alerts: ${name} is exposed`)
})
