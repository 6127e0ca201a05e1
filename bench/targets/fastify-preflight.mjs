// A bare Fastify route answering a preflight with the same headers corsgate sends for the
// bench policy (the request's Origin reflected, no check of it): what the 204 of
// fastify-204.mjs costs once it carries a real CORS answer. Not a product: a reference that
// separates the cost of the headers from the cost of corsgate's policy work.
import Fastify from 'fastify'

const fixed = {
  'access-control-allow-credentials': 'true',
  'access-control-allow-methods': 'GET, HEAD, POST, PUT, PATCH, DELETE',
  'access-control-allow-headers': 'Content-Type, Authorization, X-Requested-With, X-CSRF-TOKEN, X-XSRF-TOKEN',
  'access-control-max-age': '600',
  vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
  'content-length': '0'
}
const app = Fastify({ logger: false })
app.options('/*', (request, reply) => {
  reply.code(204).headers(fixed).header('access-control-allow-origin', request.headers.origin).send()
})
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
process.send?.('ready')
process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
