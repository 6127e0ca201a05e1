// Prometheus metrics (prom-client). The origin is never a label: it is unbounded.
//
// The two metrics written on every request (the request counter and the duration histogram)
// are counted here in plain numbers and handed to prom-client when /metrics is read: its
// labelled `inc()` and `observe()` validate and hash their labels on every call, a cost paid on
// every request for figures read a few times a minute (bench/RESULTS.md has the measurement).
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client'
import type { PolicySnapshot } from '../policy/snapshot.js'
import type { ReloadRecord } from '../sources/policy-store.js'

import type { RequestKind } from '../gateway/judge.js'

export type { RequestKind }

const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** The running totals of one route and kind: requests per decision and reason, and their durations. */
class RequestSeries {
  /** decision → reason → requests. */
  readonly outcomes = new Map<string, Map<string, number>>()
  /** Requests per duration bucket (not cumulative); the last slot is above the last bound. */
  readonly buckets = new Array<number>(DURATION_BUCKETS.length + 1).fill(0)
  sum = 0
  count = 0

  constructor (readonly route: string, readonly kind: RequestKind) {}

  record (decision: string, reason: string, seconds: number): void {
    let reasons = this.outcomes.get(decision)
    if (reasons === undefined) {
      reasons = new Map()
      this.outcomes.set(decision, reasons)
    }
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1)
    let i = 0
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++
    this.buckets[i]!++
    this.sum += seconds
    this.count++
  }
}

/** One exposition line of a histogram, as prom-client's Registry reads it. */
interface HistogramValue { labels: Record<string, string | number>, sharedLabels: Record<string, string>, value: number, metricName: string }

/**
 * `corsgate_request_duration_seconds`, read from the series at scrape time. The Registry asks a
 * metric for `get()` and formats what it returns; prom-client's typings declare `type` as an enum
 * where the runtime uses the string, hence the cast where it is registered.
 */
class DurationHistogram {
  readonly name = 'corsgate_request_duration_seconds'
  readonly help = 'Time from request to response end, preflights included'
  readonly type = 'histogram'
  readonly aggregator = 'sum'

  constructor (private readonly series: () => Iterable<RequestSeries>) {}

  get (): { name: string, help: string, type: string, aggregator: string, values: HistogramValue[] } {
    const values: HistogramValue[] = []
    const bucket = `${this.name}_bucket`
    for (const s of this.series()) {
      // As prom-client's Histogram: `le` first, the series' labels after it.
      const sharedLabels = { route: s.route, kind: s.kind }
      let cumulative = 0
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i]!
        values.push({ labels: { le }, sharedLabels, value: cumulative, metricName: bucket })
      })
      values.push({ labels: { le: '+Inf' }, sharedLabels, value: s.count, metricName: bucket })
      values.push({ labels: {}, sharedLabels, value: s.sum, metricName: `${this.name}_sum` })
      values.push({ labels: {}, sharedLabels, value: s.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {}
}

export class GatewayMetrics {
  readonly registry = new Registry()
  readonly requests: Counter<'route' | 'kind' | 'decision' | 'reason'>
  readonly upstreamErrors: Counter<'route' | 'kind'>
  readonly reloads: Counter<'source' | 'result'>
  readonly lastReload: Gauge
  readonly lastSourceLoad: Gauge<'source'>
  readonly origins: Gauge<'policy' | 'source'>
  readonly skippedEntries: Counter<'source'>
  readonly redisConnected: Gauge
  readonly openWebsockets: Gauge<'route'>
  readonly slowClients: Counter<'direction'>
  readonly bufferedToFile: Counter<'direction'>
  readonly shieldRefusals: Counter<'route' | 'reason'>
  readonly concurrencyLimit: Gauge<'route' | 'upstream'>
  readonly observedDropped: Counter<'policy' | 'row'>
  readonly tlsReloads: Counter<'result'>
  readonly tlsCertificateExpiry: Gauge
  /** The observer's drop counts, read at scrape time (see `countObservedDrops`). */
  private observedDrops: (() => Iterable<{ policy: string, row: string, requests: number }>) | undefined
  /** route → kind → totals (bounded: routes × kinds, and decisions × reasons within). */
  private readonly series = new Map<string, Map<RequestKind, RequestSeries>>()

  constructor ({ defaultMetrics = true }: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry]
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'corsgate_' })
    const allSeries = (): Iterable<RequestSeries> => [...this.series.values()].flatMap((byKind) => [...byKind.values()])
    this.requests = new Counter({
      name: 'corsgate_requests_total',
      help: 'Requests by route, kind (preflight, actual, websocket), decision and reason',
      labelNames: ['route', 'kind', 'decision', 'reason'],
      registers,
      collect () {
        this.reset()
        for (const s of allSeries()) {
          for (const [decision, reasons] of s.outcomes) {
            for (const [reason, n] of reasons) this.inc({ route: s.route, kind: s.kind, decision, reason }, n)
          }
        }
      }
    })
    this.registry.registerMetric(new DurationHistogram(allSeries) as unknown as Metric)
    this.upstreamErrors = new Counter({ name: 'corsgate_upstream_errors_total', help: 'Upstream failures by route and kind (timeout, unavailable, reset, body_too_large)', labelNames: ['route', 'kind'], registers })
    this.reloads = new Counter({ name: 'corsgate_policy_reloads_total', help: 'Policy reloads by source and result (ok, partial, error)', labelNames: ['source', 'result'], registers })
    this.lastReload = new Gauge({ name: 'corsgate_policy_last_reload_timestamp_seconds', help: 'Unix time of the last successful policy reload', registers })
    // A Redis read that finds nothing changed swaps nothing, so `lastReload` alone cannot tell a
    // quiet whitelist from a stale one: this one moves on every successful read.
    this.lastSourceLoad = new Gauge({ name: 'corsgate_policy_source_last_load_timestamp_seconds', help: 'Unix time of the last successful read of each policy source (file, redis), changed or not', labelNames: ['source'], registers })
    this.origins = new Gauge({ name: 'corsgate_policy_origins', help: 'Allow entries per policy and source', labelNames: ['policy', 'source'], registers })
    this.skippedEntries = new Counter({ name: 'corsgate_policy_invalid_entries_total', help: 'Invalid origin entries skipped, by source', labelNames: ['source'], registers })
    this.redisConnected = new Gauge({ name: 'corsgate_redis_connected', help: '1 when the Redis source is connected, 0 otherwise', registers })
    this.openWebsockets = new Gauge({ name: 'corsgate_open_websockets', help: 'Websockets currently open through the gateway', labelNames: ['route'], registers })
    this.slowClients = new Counter({ name: 'corsgate_slow_clients_cut_total', help: 'Clients cut for sending their body (request) or reading the answer (response) below the data-rate floor', labelNames: ['direction'], registers })
    this.bufferedToFile = new Counter({ name: 'corsgate_buffered_to_file_total', help: 'Request bodies and answers that outgrew the memory buffer and went to a temporary file', labelNames: ['direction'], registers })
    this.shieldRefusals = new Counter({ name: 'corsgate_backend_protection_refusals_total', help: 'Requests refused to protect the upstream: queue_full (503), client_in_flight (429), client_connections (connection closed)', labelNames: ['route', 'reason'], registers })
    this.concurrencyLimit = new Gauge({ name: 'corsgate_upstream_concurrency_limit', help: 'Requests each upstream is sent at once at most right now: the adaptive limit found from its latency, or the route\'s upstreamConnections', labelNames: ['route', 'upstream'], registers })
    this.tlsReloads = new Counter({ name: 'corsgate_tls_certificate_reloads_total', help: 'Public port certificate reloads by result: ok (in use), rejected (did not load; the old one kept)', labelNames: ['result'], registers })
    this.tlsCertificateExpiry = new Gauge({ name: 'corsgate_tls_certificate_expiry_timestamp_seconds', help: 'Unix time at which the public port\'s certificate in use expires (notAfter)', registers })
    const drops = (): Iterable<{ policy: string, row: string, requests: number }> => this.observedDrops?.() ?? []
    this.observedDropped = new Counter({
      name: 'corsgate_observed_dropped_total',
      help: 'Requests whose origin was not kept as its own observed row, by policy and row: other (past observe.maxOrigins) or invalid (not a serialized origin)',
      labelNames: ['policy', 'row'],
      registers,
      collect () {
        this.reset()
        for (const d of drops()) this.inc({ policy: d.policy, row: d.row }, d.requests)
      }
    })
  }

  /** Where `corsgate_observed_dropped_total` reads its counts (the observer keeps them per row). */
  countObservedDrops (source: () => Iterable<{ policy: string, row: string, requests: number }>): void {
    this.observedDrops = source
  }

  /** Counts one finished request and its duration. */
  recordRequest (route: string, kind: RequestKind, decision: string, reason: string, seconds: number): void {
    let byKind = this.series.get(route)
    if (byKind === undefined) {
      byKind = new Map()
      this.series.set(route, byKind)
    }
    let series = byKind.get(kind)
    if (series === undefined) {
      series = new RequestSeries(route, kind)
      byKind.set(kind, series)
    }
    series.record(decision, reason, seconds)
  }

  observeReload (snapshot: PolicySnapshot, record: ReloadRecord): void {
    this.reloads.inc({ source: record.source, result: record.result })
    if (record.result !== 'error') {
      this.lastReload.set(record.at / 1000)
      this.lastSourceLoad.set({ source: record.source }, record.at / 1000)
    }
    this.origins.reset()
    for (const [name, policy] of snapshot.policies) {
      const counts = new Map<string, number>()
      for (const entry of policy.allow.entries()) counts.set(entry.source, (counts.get(entry.source) ?? 0) + 1)
      for (const [source, n] of counts) this.origins.set({ policy: name, source }, n)
    }
  }
}
