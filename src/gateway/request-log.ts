// The record of one finished request (SPEC "Logs", "Metrics"), the same whichever stage
// answered it: admission (corsgate's own answers), Fastify's `onResponse`, the raw forwarding
// sink, or the websocket handshake.
import type { Judgement } from './judge.js'
import type { GatewayContext } from './context.js'

let directIds = 0

/** An id for a request answered outside Fastify (which numbers its own `req-N`). */
export function directRequestId (): string {
  return `direct-${(++directIds).toString(36)}`
}

/** Metrics, the observed origin, the live view's record and, when info is on, the one log line of a finished request. */
export function recordRequest (opts: Pick<GatewayContext, 'metrics' | 'logger' | 'observer' | 'decisions'>, logRequests: boolean, state: Judgement, reqId: string, req: { readonly method?: string | undefined, readonly httpVersion: string }, status: number, elapsedMs: number, upstream?: string): void {
  const route = state.route?.label ?? 'none'
  opts.metrics.recordRequest(route, state.kind, state.decision.outcome, state.decision.reason, elapsedMs / 1000)
  opts.observer?.record(state.policy.name, state.origin, state.decision.outcome, state.decision.reason, route)
  opts.decisions?.record({
    at: Date.now(),
    route,
    policy: state.policy.name,
    kind: state.kind,
    method: req.method ?? '',
    path: state.path,
    origin: state.origin ?? null,
    outcome: state.decision.outcome,
    reason: state.decision.reason,
    rule: state.decision.rule ?? null,
    detail: state.decision.detail ?? null,
    status,
    durationMs: Math.round(elapsedMs * 1000) / 1000
  })
  if (logRequests) {
    opts.logger.info({
      reqId,
      route,
      method: req.method,
      // "2.0" for HTTP/2, "1.1" otherwise (websocket upgrades are always HTTP/1.1).
      httpVersion: req.httpVersion,
      path: state.path,
      origin: state.origin,
      kind: state.kind,
      decision: state.decision.outcome,
      reason: state.decision.reason,
      rule: state.decision.rule,
      detail: state.decision.detail,
      status,
      upstream,
      durationMs: Math.round(elapsedMs * 1000) / 1000
    }, 'request')
  }
}
