// The floor for any Node.js proxy on this machine: node:http server + an undici Pool, the
// upstream's response piped back, no CORS, no routing, no hooks, no metrics. Not a product:
// a reference that shows how much of corsgate's cost per request is Node's HTTP stack itself.
import { createServer } from 'node:http'
import { Pool } from 'undici'

const port = Number(process.env.PORT)
const pool = new Pool(process.env.UPSTREAM, { connections: 128, pipelining: 1, keepAliveTimeout: 4000 })

createServer((req, res) => {
  const headers = { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress, 'x-forwarded-proto': 'http' }
  delete headers.connection
  pool.request({ method: req.method, path: req.url, headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req }, (err, up) => {
    if (err) { res.writeHead(502).end(); return }
    delete up.headers['transfer-encoding']
    delete up.headers.connection
    delete up.headers['keep-alive']
    res.writeHead(up.statusCode, up.headers)
    up.body.pipe(res)
  })
}).listen(port, '127.0.0.1', () => process.send?.('ready'))
process.on('SIGTERM', () => process.exit(0))
