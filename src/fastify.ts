// Package export `corsgate/fastify`: the Fastify plugin (src/library/fastify-plugin.ts).
export { corsgate, corsgate as default } from './library/fastify-plugin.js'
export type { Corsgate, CorsgatePluginOptions } from './library/fastify-plugin.js'
export type { ConfigInput } from './library/embedded-config.js'
export { ConfigError } from './config/load.js'
export type { Explanation, ExplainQuery } from './gateway/explain.js'
export type { Judgement } from './gateway/judge.js'
