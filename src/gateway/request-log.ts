// The record of one finished request (SPEC.md "Logs", "Metrics"), the same whichever path
// answered it: Fastify's hooks (cors.ts), the early answers (cors.ts `answerEarly`) or the
// direct forwarding path (forward.ts).
import type { CorsState } from './cors.js'
import type { GatewayContext } from './context.js'

let directIds = 0

/** An id for a request answered outside Fastify (which numbers its own `req-N`). */
export function directRequestId (): string {
  return `direct-${(++directIds).toString(36)}`
}

/** Metrics, the observed origin and, when info is on, the one log line of a finished request. */
export function recordRequest (opts: Pick<GatewayContext, 'metrics' | 'logger' | 'observer'>, logRequests: boolean, state: CorsState, reqId: string, method: string | undefined, status: number, elapsedMs: number): void {
  const route = state.route?.label ?? 'none'
  opts.metrics.recordRequest(route, state.kind, state.decision.outcome, state.decision.reason, elapsedMs / 1000)
  opts.observer?.record(state.policy.name, state.origin, state.decision.outcome, state.decision.reason, route)
  if (logRequests) {
    opts.logger.info({
      reqId,
      route,
      method,
      path: state.path,
      origin: state.origin,
      kind: state.kind,
      decision: state.decision.outcome,
      reason: state.decision.reason,
      rule: state.decision.rule,
      status,
      durationMs: Math.round(elapsedMs * 1000) / 1000
    }, 'request')
  }
}
