// A Fastify app that keeps @fastify/cors: corsgate decides, @fastify/cors writes the headers.
import cors from '@fastify/cors'
import Fastify from 'fastify'
import { corsgateDelegator } from 'corsgate/fastify-cors'

const app = Fastify({ logger: true })

const delegator = await corsgateDelegator({
  config: {
    policies: {
      default: { origins: ['https://app.example.com', 'https://*.example.com'], maxAge: 600 }
    },
    ...(process.env.REDIS_URL ? { redis: { url: process.env.REDIS_URL } } : {})
  }
})
// The delegator reads Redis until it is closed.
app.addHook('onClose', async () => { await delegator.close() })
await app.register(cors, { delegator })

app.get('/api/users', async () => [{ id: 1, name: 'Ada' }])

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 3000) })
