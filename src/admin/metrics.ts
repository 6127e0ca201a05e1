// Prometheus metrics (prom-client). The origin is never a label: it is unbounded.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { PolicySnapshot } from '../policy/snapshot.js'
import type { ReloadRecord } from '../sources/policy-store.js'

export type RequestKind = 'preflight' | 'actual' | 'websocket'

interface RequestChildren {
  requests: { inc: () => void }
  duration: { observe: (value: number) => void }
}

export class GatewayMetrics {
  readonly registry = new Registry()
  readonly requests: Counter<'route' | 'kind' | 'decision' | 'reason'>
  readonly duration: Histogram<'route' | 'kind'>
  readonly upstreamErrors: Counter<'route' | 'kind'>
  readonly reloads: Counter<'source' | 'result'>
  readonly lastReload: Gauge
  readonly origins: Gauge<'policy' | 'source'>
  readonly skippedEntries: Counter<'source'>
  readonly redisConnected: Gauge
  readonly openWebsockets: Gauge<'route'>
  /** route → `kind decision reason` → labelled children (bounded: routes × kinds × decisions × reasons). */
  private readonly children = new Map<string, Map<string, RequestChildren>>()

  constructor ({ defaultMetrics = true }: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry]
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'corsgate_' })
    this.requests = new Counter({ name: 'corsgate_requests_total', help: 'Requests by route, kind (preflight, actual, websocket), decision and reason', labelNames: ['route', 'kind', 'decision', 'reason'], registers })
    this.duration = new Histogram({
      name: 'corsgate_request_duration_seconds',
      help: 'Time from request to response end, preflights included',
      labelNames: ['route', 'kind'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers
    })
    this.upstreamErrors = new Counter({ name: 'corsgate_upstream_errors_total', help: 'Upstream failures by route and kind (timeout, unavailable, reset, body_too_large)', labelNames: ['route', 'kind'], registers })
    this.reloads = new Counter({ name: 'corsgate_policy_reloads_total', help: 'Policy reloads by source and result (ok, partial, error)', labelNames: ['source', 'result'], registers })
    this.lastReload = new Gauge({ name: 'corsgate_policy_last_reload_timestamp_seconds', help: 'Unix time of the last successful policy reload', registers })
    this.origins = new Gauge({ name: 'corsgate_policy_origins', help: 'Allow entries per policy and source', labelNames: ['policy', 'source'], registers })
    this.skippedEntries = new Counter({ name: 'corsgate_policy_invalid_entries_total', help: 'Invalid origin entries skipped, by source', labelNames: ['source'], registers })
    this.redisConnected = new Gauge({ name: 'corsgate_redis_connected', help: '1 when the Redis source is connected, 0 otherwise', registers })
    this.openWebsockets = new Gauge({ name: 'corsgate_open_websockets', help: 'Websockets currently open through the gateway', labelNames: ['route'], registers })
  }

  /**
   * Counts one finished request and observes its duration. The labelled children are looked
   * up once per label combination and kept, which saves the `labels()` lookup per request
   * (prom-client's children still validate and hash their labels on each call).
   */
  recordRequest (route: string, kind: RequestKind, decision: string, reason: string, seconds: number): void {
    let byRoute = this.children.get(route)
    if (byRoute === undefined) {
      byRoute = new Map()
      this.children.set(route, byRoute)
    }
    const key = `${kind} ${decision} ${reason}`
    let child = byRoute.get(key)
    if (child === undefined) {
      child = { requests: this.requests.labels({ route, kind, decision, reason }), duration: this.duration.labels({ route, kind }) }
      byRoute.set(key, child)
    }
    child.requests.inc()
    child.duration.observe(seconds)
  }

  observeReload (snapshot: PolicySnapshot, record: ReloadRecord): void {
    this.reloads.inc({ source: record.source, result: record.result })
    if (record.result !== 'error') this.lastReload.set(record.at / 1000)
    this.origins.reset()
    for (const [name, policy] of snapshot.policies) {
      const counts = new Map<string, number>()
      for (const entry of policy.allow.entries()) counts.set(entry.source, (counts.get(entry.source) ?? 0) + 1)
      for (const [source, n] of counts) this.origins.set({ policy: name, source }, n)
    }
  }
}
