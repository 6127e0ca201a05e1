// The ceiling for a preflight answered in Fastify: a bare route answering 204, no hooks,
// no logger. corsgate's preflight path runs on the same server, so this is what it is
// measured against ("preflight req/s vs a bare Fastify route answering 204").
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.options('/*', (_request, reply) => { reply.code(204).send() })
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
process.send?.('ready')
process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
