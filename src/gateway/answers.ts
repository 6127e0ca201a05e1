// Every answer corsgate gives itself is planned here once (status, headers, body) and written
// by one of two writers: `writeAnswer` on an HTTP response, `writeAnswerToSocket` on the raw
// socket of an upgrade that never became a websocket. The CORS and `Vary` rules for every
// answer — corsgate's, a plugin's, the upstream's — are `corsHeaders` and `varyFor`.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { actualHeaders, appendVaryOrigin, preflightHeaders, PREFLIGHT_VARY } from '../policy/headers.js'
import { errorBody, statusOf, type AnswerableError } from './errors.js'
import { singleHeader, type Judgement } from './judge.js'
import { STATUS_CODES } from '../node-http.js'

export interface AnswerPlan {
  status: number
  headers: Record<string, string>
  body: string
}

const JSON_TYPE = 'application/json; charset=utf-8'

/** 403 of a denied request, preflight or upgrade: no `Access-Control-Allow-*` headers. */
export function denialAnswer (state: Judgement): AnswerPlan {
  const reason = state.decision.reason
  const detail = state.decision.detail
  const body = JSON.stringify(detail === undefined ? { error: 'cors_denied', reason } : { error: 'cors_denied', reason, detail })
  return { status: 403, headers: { 'content-type': JSON_TYPE, vary: varyFor(state, undefined)! }, body }
}

/** The answer to a preflight that is not refused (allowed, or a report-only would-deny). */
export function preflightAnswer (state: Judgement, headers: Record<string, string | string[] | undefined>): AnswerPlan {
  return {
    status: state.policy.preflightStatus,
    headers: preflightHeaders(state.policy, state.decision, {
      requestHeaders: singleHeader(headers['access-control-request-headers']),
      privateNetwork: headers['access-control-request-private-network'] === 'true'
    }),
    body: ''
  }
}

/**
 * One of corsgate's errors (errors.ts), with the CORS headers of an allowed origin so a browser
 * shows the real error rather than a CORS error. `state` is undefined for a request refused
 * before it could be judged (a malformed head): `Vary: Origin` then, in case a cache looks.
 */
export function errorAnswer (error: AnswerableError, state: Judgement | undefined): AnswerPlan {
  const status = statusOf(error)
  const headers: Record<string, string> = { 'content-type': JSON_TYPE }
  if (state === undefined) headers.vary = 'Origin'
  else addCorsHeaders(headers, state)
  return { status, headers, body: JSON.stringify(errorBody(status, error.code, error.message)) }
}

/** The CORS headers an answer to an allowed (or report-only) origin carries; none after a refusal. */
export function corsHeaders (state: Judgement): Record<string, string> | undefined {
  return state.decision.reject ? undefined : actualHeaders(state.policy, state.decision)
}

/** Adds the CORS headers and the `Vary` the judgement calls for to `headers` (an answer's). */
export function addCorsHeaders (headers: Record<string, string | string[] | number | undefined>, state: Judgement): void {
  const cors = corsHeaders(state)
  if (cors !== undefined) Object.assign(headers, cors)
  const vary = varyFor(state, headerText(headers.vary))
  if (vary !== undefined) headers.vary = vary
}

/**
 * The `Vary` of an answer (SPEC "Actual requests": appended, never replacing): preflight answers
 * depend on three request headers (Fetch §3.2.5); every answer of a route whose policy is not a
 * plain `*`, and every refusal, depends on `Origin`.
 */
export function varyFor (state: Judgement, existing: string | undefined): string | undefined {
  if (state.kind === 'preflight') return PREFLIGHT_VARY
  if (state.decision.reject || state.policy.varyOrigin) return appendVaryOrigin(existing)
  return existing
}

function headerText (value: string | string[] | number | undefined): string | undefined {
  if (value === undefined) return undefined
  return Array.isArray(value) ? value.join(', ') : String(value)
}

/**
 * Writes a plan on an HTTP response. `close` ends the connection after it (shutting down, or
 * a request body left unread). The reason phrase is given: a response whose `writeHead` threw
 * still holds the upstream's.
 */
export function writeAnswer (res: ServerResponse, plan: AnswerPlan, close: boolean): void {
  // A plan is made for one answer, so its headers are written as they are.
  const headers: OutgoingHttpHeaders = plan.headers
  if (plan.body !== '' || headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(plan.body)
  // HTTP/2 has neither reason phrases nor `Connection` (RFC 9113 §8.2.2, §8.3.2): a stream
  // ends by itself, and shutdown is a GOAWAY for the whole connection.
  if (isHttp2(res)) {
    res.writeHead(plan.status, headers)
  } else {
    if (close) headers.connection = 'close'
    res.writeHead(plan.status, STATUS_CODES[plan.status], headers)
  }
  res.end(plan.body)
}

/** True for the response to an HTTP/2 request (Node's compatibility `Http2ServerResponse`, which has a `stream`). */
export function isHttp2 (res: ServerResponse): boolean {
  return 'stream' in res
}

/** Writes a plan as a whole HTTP/1.1 response on a socket that never became a websocket, then closes it. */
export function writeAnswerToSocket (socket: Duplex, plan: AnswerPlan): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  let head = `HTTP/1.1 ${plan.status} ${STATUS_CODES[plan.status] ?? ''}\r\n`
  for (const name in plan.headers) {
    if (name !== 'content-length' && name !== 'connection') head += `${name}: ${plan.headers[name]!}\r\n`
  }
  socket.end(`${head}content-length: ${Buffer.byteLength(plan.body)}\r\nconnection: close\r\n\r\n${plan.body}`)
  // The client closes after reading; if it does not, do not keep the socket.
  ;(socket as Duplex & { setTimeout?: (ms: number, cb: () => void) => void }).setTimeout?.(5_000, () => socket.destroy())
}
