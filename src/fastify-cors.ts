// Package export `corsgate/fastify-cors`: an @fastify/cors delegator (src/library/cors-delegator.ts).
export { corsgateDelegator, corsOptionsFor } from './library/cors-delegator.js'
export type { CorsgateDelegator, CorsgateDelegatorOptions, DelegatedCorsOptions } from './library/cors-delegator.js'
export type { ConfigInput } from './library/embedded-config.js'
export { ConfigError } from './config/load.js'
