// The upstream every proxy in the benchmark forwards to, and the "direct" target: a trivial
// Node HTTP server in its own process. Small JSON body, keep-alive held open longer than any
// proxy's pool keeps idle sockets, request bodies drained (POST scenario).
import { createServer } from 'node:http'

const port = Number(process.env.PORT)
const body = Buffer.from(JSON.stringify({ ok: true, service: 'bench-upstream', items: [1, 2, 3] }))

const server = createServer((req, res) => {
  const reply = () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length })
    res.end(body)
  }
  if (req.method === 'GET' || req.method === 'HEAD') {
    reply()
    req.resume()
    return
  }
  req.on('data', () => {})
  req.on('end', reply)
})
server.keepAliveTimeout = 65_000
server.headersTimeout = 66_000
server.listen(port, '127.0.0.1', () => process.send?.('ready'))
process.on('SIGTERM', () => process.exit(0))
