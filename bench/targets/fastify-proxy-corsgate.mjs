// A Fastify gateway built from @fastify/http-proxy with corsgate's plugin (`corsgate/fastify`,
// from the built package): the library's cost in the stack it is made for.
import proxy from '@fastify/http-proxy'
import Fastify from 'fastify'
import corsgate from '../../dist/fastify.js'

const origins = JSON.parse(process.env.BENCH_ALLOWED)
const app = Fastify({ logger: false })
await app.register(corsgate, {
  config: { policies: { default: { origins, maxAge: 600 } }, observe: { enabled: false } },
  logRequests: false
})
await app.register(proxy, { upstream: process.env.UPSTREAM, prefix: '/api', rewritePrefix: '/api' })
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
process.send?.('ready')
process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
