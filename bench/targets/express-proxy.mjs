// The stack the popular CORS guides recommend: express + `cors` with a whitelist callback +
// http-proxy-middleware, given a keep-alive agent so it is not handicapped by a new upstream
// connection per request. Same policy as corsgate's bench config: denied origins get 403.
import { Agent } from 'node:http'
import cors from 'cors'
import express from 'express'
import { createProxyMiddleware } from 'http-proxy-middleware'

const port = Number(process.env.PORT)
const upstream = process.env.UPSTREAM
const exact = new Set(JSON.parse(process.env.EXACT_ORIGINS ?? '[]'))
// `https://*.example.com` → a regex over the origin, as the guides write wildcards.
const wildcards = JSON.parse(process.env.WILDCARD_ORIGINS ?? '[]')
  .map((p) => new RegExp(`^${p.replace(/[.]/g, '\\.').replace('*\\.', '([a-z0-9-]+\\.)+')}$`))

class CorsDenied extends Error {}

const app = express()
app.disable('x-powered-by')
app.disable('etag')
app.use(cors({
  origin (origin, callback) {
    if (origin === undefined || exact.has(origin) || wildcards.some((re) => re.test(origin))) callback(null, true)
    else callback(new CorsDenied('origin_not_allowed'))
  },
  credentials: true,
  methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
  allowedHeaders: ['Content-Type', 'Authorization', 'X-Requested-With', 'X-CSRF-TOKEN', 'X-XSRF-TOKEN'],
  maxAge: 600
}))
app.use(createProxyMiddleware({
  target: upstream,
  xfwd: true,
  agent: new Agent({ keepAlive: true, maxSockets: 128, keepAliveMsecs: 4000 })
}))
app.use((err, _req, res, next) => {
  if (!(err instanceof CorsDenied)) return next(err)
  res.status(403).vary('Origin').json({ error: 'cors_denied', reason: err.message })
})
app.listen(port, '127.0.0.1', () => process.send?.('ready'))
process.on('SIGTERM', () => process.exit(0))
