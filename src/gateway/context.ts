// What every stage of the gateway works with: the config, the live policies, the route table,
// the metrics, the logger, and whether shutdown has begun. Built once in server.ts.
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { OriginObserver } from '../observe/origin-table.js'
import type { PolicyStore } from '../sources/policy-store.js'
import type { DecisionLog } from './decision-log.js'
import type { RequestKind } from './judge.js'
import type { RouteTable } from './route-table.js'

/** The counters the gateway feeds (admin/metrics.ts implements them for Prometheus). */
export interface RequestMetrics {
  recordRequest: (route: string, kind: RequestKind, decision: string, reason: string, seconds: number) => void
  upstreamErrors: { inc: (labels: { route: string, kind: string }) => void }
  openWebsockets: { inc: (labels: { route: string }) => void, dec: (labels: { route: string }) => void }
  slowClients: { inc: (labels: { direction: 'request' | 'response' }) => void }
  bufferedToFile: { inc: (labels: { direction: 'request' | 'response' }) => void }
  shieldRefusals: { inc: (labels: { route: string, reason: string }) => void }
  concurrencyLimit: { set: (labels: { route: string, upstream: string }, value: number) => void }
}

export interface GatewayContext {
  config: Config
  store: PolicyStore
  routes: RouteTable
  metrics: RequestMetrics
  logger: Logger
  /** True once shutdown has begun: new requests get 503, open websockets 1001. */
  isClosing: () => boolean
  /** Counts each finished request's origin per policy (SPEC.md "Observed origins"); absent when `observe.enabled` is off. */
  observer?: OriginObserver | undefined
  /** The recent decisions the admin page's live view reads; absent in library use. */
  decisions?: DecisionLog | undefined
}
