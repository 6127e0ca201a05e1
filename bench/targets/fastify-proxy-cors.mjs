// The same @fastify/http-proxy gateway with @fastify/cors and the hand-written origin function
// the popular CORS guides teach: a Set of allowed origins, no origin allowed through.
import cors from '@fastify/cors'
import proxy from '@fastify/http-proxy'
import Fastify from 'fastify'

const allowed = new Set(JSON.parse(process.env.BENCH_ALLOWED))
const app = Fastify({ logger: false })
await app.register(cors, {
  origin: (origin, callback) => { callback(null, origin === undefined || allowed.has(origin)) },
  credentials: true,
  methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
  allowedHeaders: ['Content-Type', 'Authorization', 'X-Requested-With', 'X-CSRF-TOKEN', 'X-XSRF-TOKEN'],
  maxAge: 600
})
await app.register(proxy, { upstream: process.env.UPSTREAM, prefix: '/api', rewritePrefix: '/api' })
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
process.send?.('ready')
process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
