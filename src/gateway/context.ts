// What every gateway plugin works with: the config, the live policies, the route table, the
// metrics, the logger, and whether shutdown has begun. Built once in server.ts.
import type { Logger } from 'pino'
import type { GatewayMetrics } from '../admin/metrics.js'
import type { Config } from '../config/schema.js'
import type { OriginObserver } from '../observe/origin-table.js'
import type { PolicyStore } from '../sources/policy-store.js'
import type { RouteTable } from './route-table.js'

export interface GatewayContext {
  config: Config
  store: PolicyStore
  routes: RouteTable
  metrics: GatewayMetrics
  logger: Logger
  /** True once shutdown has begun: new requests get 503, open websockets 1001. */
  isClosing: () => boolean
  /** Counts each finished request's origin per policy (SPEC.md "Observed origins"); absent when `observe.enabled` is off. */
  observer?: OriginObserver | undefined
}
