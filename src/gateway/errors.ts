// The one catalogue of the answers corsgate gives itself, with stable `CORSGATE_*` codes users
// can grep for. Every error answer has the same JSON shape: {"error", "statusCode", "code",
// "message"} (answers.ts builds and writes it; `cors_denied` 403s have a shape of their own).
import createError from '@fastify/error'

export const NoRouteError = createError('CORSGATE_NO_ROUTE', 'no route for this host and path', 404)
export const PayloadTooLargeError = createError('CORSGATE_PAYLOAD_TOO_LARGE', 'request body is larger than %s bytes', 413)
export const BadPathError = createError('CORSGATE_BAD_PATH', 'path contains dot-segments, encoded slashes or backslashes', 400)
export const UndecodablePathError = createError('CORSGATE_BAD_PATH', 'path is not valid percent-encoded UTF-8', 400)
export const UpstreamUnavailableError = createError('CORSGATE_UPSTREAM_UNAVAILABLE', 'upstream unavailable', 502)
export const UpstreamTimeoutError = createError('CORSGATE_UPSTREAM_TIMEOUT', 'upstream did not answer in time', 504)
export const ShuttingDownError = createError('CORSGATE_SHUTTING_DOWN', 'gateway is shutting down', 503)
export const TooManyHeadersError = createError('CORSGATE_TOO_MANY_HEADERS', 'more than %s request header lines', 431)
export const DuplicateHostError = createError('CORSGATE_DUPLICATE_HOST', 'more than one Host header', 400)
export const AuthorityMismatchError = createError('CORSGATE_DUPLICATE_HOST', 'Host and :authority name different hosts', 400)
export const UpgradeRefusedError = createError('CORSGATE_UPGRADE_REFUSED', '%s', 400)
export const RequestTimeoutError = createError('CORSGATE_REQUEST_TIMEOUT', 'request not received in time', 408)
export const HeadersTooLargeError = createError('CORSGATE_HEADERS_TOO_LARGE', 'request headers too large', 431)
export const MalformedRequestError = createError('CORSGATE_MALFORMED_REQUEST', '%s', 400)
export const UpstreamBusyError = createError('CORSGATE_UPSTREAM_BUSY', 'upstream busy: too many requests waiting for a connection', 503)
export const TooManyInFlightError = createError('CORSGATE_CLIENT_LIMIT', 'too many requests in flight from this client', 429)
export const SlowClientError = createError('CORSGATE_SLOW_CLIENT', 'request body sent below the minimum data rate', 408)
export const UnexpectedError = createError('CORSGATE_INTERNAL', 'unexpected error', 500)
export const UnknownPolicyError = createError('CORSGATE_UNKNOWN_POLICY', 'the app chose policy "%s", which is not defined under policies', 500)

/** What every answer-worthy error carries (ours, Fastify's and a plugin's alike). */
export interface AnswerableError {
  statusCode?: number
  code?: string
  message: string
}

const ERROR_NAMES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
  431: 'request_header_fields_too_large',
  500: 'internal_error',
  502: 'bad_gateway',
  503: 'service_unavailable',
  504: 'gateway_timeout'
}

export interface ErrorBody {
  error: string
  statusCode: number
  code?: string
  message?: string
}

export function errorBody (statusCode: number, code: string | undefined, message: string | undefined): ErrorBody {
  const body: ErrorBody = { error: ERROR_NAMES[statusCode] ?? (statusCode >= 500 ? 'internal_error' : 'bad_request'), statusCode }
  if (code !== undefined) body.code = code
  // 5xx messages from libraries can leak internals; only our own codes keep theirs.
  if (message !== undefined && (statusCode < 500 || code?.startsWith('CORSGATE_') === true)) body.message = message
  return body
}

/** The status an error is answered with: its own when it is an HTTP error status, else 500. */
export function statusOf (error: AnswerableError): number {
  const s = error.statusCode
  return s !== undefined && s >= 400 && s < 600 ? s : 500
}
