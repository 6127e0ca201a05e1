// Which route serves a request: the longest path prefix among the routes for the request's
// host, falling back to routes without a host. One table decides for the proxy, websocket
// upgrades, `/explain` and `corsgate check`, so they can never disagree.
import type { RouteConfig } from '../config/schema.js'
import { UpstreamPool } from './balance/upstream-pool.js'

export interface Route {
  readonly index: number
  readonly path: string
  readonly host: string | undefined
  /** The first (or only) upstream: what logs, `/explain` and `/policies` show. */
  readonly upstream: string
  /** Every upstream (`upstream` alone is a list of one), chosen per request by `pool`. */
  readonly upstreams: readonly string[]
  readonly pool: UpstreamPool
  readonly websocket: boolean
  readonly policy: string
  /** Whether the upstream is sent the client's `Host` or its own. */
  readonly hostHeader: 'client' | 'upstream'
  readonly timeoutMs: number
  readonly requestBuffering: boolean
  readonly responseBuffering: boolean
  /** Connections to each upstream at most, and requests that may wait for one (upstream-gate.ts). */
  readonly upstreamConnections: number
  /** Fewer than that at once when the upstream's latency says it is queueing (concurrency-limit.ts). */
  readonly adaptiveConcurrency: boolean
  readonly maxPending: number
  /** Label for logs and metrics: `host/path` or `path`. */
  readonly label: string
}

export class RouteTable {
  readonly routes: readonly Route[]
  private readonly byHost = new Map<string, Route[]>()
  private readonly anyHost: Route[]

  constructor (configs: readonly RouteConfig[], defaultConnections = 128) {
    this.routes = configs.map((r, index) => {
      const upstreams = (r.upstreams ?? [r.upstream!]).map((u) => u.replace(/\/+$/, ''))
      return {
        index,
        path: r.path,
        host: r.host?.toLowerCase(),
        upstream: upstreams[0]!,
        upstreams,
        pool: new UpstreamPool(upstreams, { ejectionMs: r.ejectionMs, sticky: r.sticky }),
        websocket: r.websocket,
        policy: r.policy,
        hostHeader: r.hostHeader,
        timeoutMs: r.timeoutMs,
        requestBuffering: r.requestBuffering,
        responseBuffering: r.responseBuffering,
        upstreamConnections: r.upstreamConnections ?? defaultConnections,
        adaptiveConcurrency: r.adaptiveConcurrency,
        maxPending: r.maxPending,
        label: r.host === undefined ? r.path : `${r.host.toLowerCase()}${r.path}`
      }
    })
    // Longest prefix first, so the first hit is the answer.
    const sorted = [...this.routes].sort((a, b) => b.path.length - a.path.length)
    this.anyHost = sorted.filter((r) => r.host === undefined)
    for (const r of sorted) {
      if (r.host === undefined) continue
      const list = this.byHost.get(r.host) ?? []
      list.push(r)
      this.byHost.set(r.host, list)
    }
  }

  /** The route for `host` (the Host header, port allowed) and `path` (no query), or undefined. */
  resolve (host: string | undefined, path: string): Route | undefined {
    if (this.byHost.size > 0 && host !== undefined) {
      const list = this.byHost.get(hostname(host))
      if (list !== undefined) {
        const hit = firstPrefix(list, path)
        if (hit !== undefined) return hit
      }
    }
    return firstPrefix(this.anyHost, path)
  }
}

function firstPrefix (routes: readonly Route[], path: string): Route | undefined {
  for (const r of routes) {
    if (covers(r.path, path)) return r
  }
  return undefined
}

/** `/api` covers `/api` and `/api/…` but not `/apix`; `/socket.io/` covers `/socket.io/…`. */
function covers (prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false
  return prefix.endsWith('/') || path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* / */
}

function hostname (host: string): string {
  const lower = host.toLowerCase()
  if (lower.startsWith('[')) {
    const end = lower.indexOf(']')
    return end < 0 ? lower : lower.slice(0, end + 1)
  }
  const colon = lower.indexOf(':')
  return colon < 0 ? lower : lower.slice(0, colon)
}
