// An existing Fastify gateway (@fastify/http-proxy: a REST API and a Socket.IO server) with
// corsgate's plugin in front of everything.
import proxy from '@fastify/http-proxy'
import Fastify from 'fastify'
import corsgate from 'corsgate/fastify'

const app = Fastify({ logger: true })

// First: preflights and refused origins are answered before any auth plugin, route or proxy.
await app.register(corsgate, {
  // Or a path to a corsgate YAML file. Without routes, the `default` policy judges everything.
  config: {
    policies: {
      default: { origins: ['https://app.example.com', 'https://*.example.com'], maxAge: 600 }
    },
    // Live whitelists: `corsgate origins add --policy default https://new.example.com`.
    ...(process.env.REDIS_URL ? { redis: { url: process.env.REDIS_URL } } : {})
  }
})

await app.register(proxy, {
  upstream: process.env.API_UPSTREAM ?? 'http://127.0.0.1:8000',
  prefix: '/api',
  rewritePrefix: '/api'
})

// Socket.IO: long-polling is plain HTTP through this route, websockets are judged on upgrade.
await app.register(proxy, {
  upstream: process.env.SOCKET_UPSTREAM ?? 'http://127.0.0.1:6001',
  prefix: '/socket.io',
  rewritePrefix: '/socket.io',
  websocket: true,
  // @fastify/http-proxy passes only the cookie on to a websocket upstream: pass the Origin
  // and Authorization too, for a backend that checks them itself.
  wsClientOptions: {
    rewriteRequestHeaders: (headers, request) => {
      const out = { ...headers }
      for (const name of ['cookie', 'origin', 'authorization']) {
        if (request.headers[name] !== undefined) out[name] = request.headers[name]
      }
      return out
    }
  }
})

// corsgate's metrics, where the app wants them (here: its own port would be better).
app.get('/internal/corsgate/metrics', async (_request, reply) => {
  const { registry } = app.corsgate.metrics
  return reply.type(registry.contentType).send(await registry.metrics())
})

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 8080) })
