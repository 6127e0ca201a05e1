// `GET /overview`: what the admin page's overview shows, in one answer: readiness and why,
// each policy's entries by source, the last reload of each source, Redis, routes with their
// upstreams in or out of rotation, open websockets.
import type { Config } from '../config/schema.js'
import type { RouteTable } from '../gateway/route-table.js'
import type { CompiledPolicy } from '../policy/compile.js'
import type { PolicyStore, ReloadRecord } from '../sources/policy-store.js'
import type { GatewayMetrics } from './metrics.js'

export interface SourceStatus {
  /** The source has loaded at least once (or needs no loading). */
  loaded: boolean
  /** Detail for `/readyz` and `/policies`: state, stale since, last error. */
  detail: Record<string, unknown>
}

/** The last reload of one source, and the last one that succeeded. */
export interface SourceReloads {
  last: ReloadRecord
  lastOkAt: number | undefined
}

export interface Readiness {
  ready: boolean
  closing: boolean
  /** Why the gateway is not ready; empty when it is. */
  reasons: string[]
}

export function readiness (config: Config, sources: Record<string, SourceStatus>, closing: boolean): Readiness {
  const reasons: string[] = []
  if (closing) reasons.push('shutting down')
  if (config.redis?.required === true && sources.redis?.loaded !== true) reasons.push('redis.required is set and Redis has not loaded yet')
  return { ready: reasons.length === 0, closing, reasons }
}

export interface OverviewOptions {
  config: Config
  store: PolicyStore
  routes: RouteTable
  metrics: GatewayMetrics
  sources: () => Record<string, SourceStatus>
  reloads: () => Record<string, SourceReloads>
  isClosing: () => boolean
}

const iso = (t: number | undefined): string | null => t === undefined ? null : new Date(t).toISOString()

function entryCounts (policy: CompiledPolicy, now: number): { allow: Record<string, number>, deny: Record<string, number>, expired: number } {
  const allow: Record<string, number> = { file: 0, env: 0, redis: 0, expiring: 0 }
  const deny: Record<string, number> = { file: 0, redis: 0 }
  let expired = 0
  for (const e of policy.allow.entries()) {
    if (e.expiresAt !== undefined) {
      if (e.expiresAt <= now) expired++
      else allow.expiring!++
      continue
    }
    allow[e.source] = (allow[e.source] ?? 0) + 1
  }
  for (const e of policy.deny.entries()) deny[e.source] = (deny[e.source] ?? 0) + 1
  return { allow, deny, expired }
}

export async function overview (opts: OverviewOptions): Promise<Record<string, unknown>> {
  const now = Date.now()
  const sources = opts.sources()
  const snapshot = opts.store.snapshot
  const open = new Map<string, number>()
  for (const v of (await opts.metrics.openWebsockets.get()).values) open.set(String(v.labels.route), v.value)
  // Set by the gateway once an upstream has been sent a request; the ceiling until then.
  const limits = new Map<string, number>()
  for (const v of (await opts.metrics.concurrencyLimit.get()).values) limits.set(`${v.labels.route} ${v.labels.upstream}`, v.value)
  return {
    now: iso(now),
    readiness: readiness(opts.config, sources, opts.isClosing()),
    policies: [...snapshot.policies].map(([name, p]) => ({ name, mode: p.mode, ...entryCounts(p, now) })),
    reloads: Object.fromEntries(Object.entries(opts.reloads()).map(([source, r]) => [source, {
      result: r.last.result,
      at: iso(r.last.at),
      errors: r.last.errors,
      lastOkAt: iso(r.lastOkAt)
    }])),
    redis: sources.redis === undefined ? null : { loaded: sources.redis.loaded, required: opts.config.redis?.required === true, ...sources.redis.detail },
    routes: opts.routes.routes.map((r) => ({
      route: r.label,
      policy: r.policy,
      websocket: r.websocket,
      upstreams: r.upstreams.map((url, i) => ({
        url,
        ejected: !r.pool.inRotation(i, now),
        concurrencyLimit: limits.get(`${r.label} ${url}`) ?? r.upstreamConnections,
        connections: r.upstreamConnections
      })),
      openWebsockets: open.get(r.label) ?? 0
    })),
    openWebsockets: [...open.values()].reduce((a, b) => a + b, 0)
  }
}
