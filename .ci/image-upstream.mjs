// The real upstream behind the container in .ci/image.sh, on the host's loopback.
// Prints {"port":N} once listening. Routes:
//   GET  /hello   200 JSON, with CORS headers of its own that the gateway must strip
//   GET  /slow    held until POST /release arrives (prints "slow received" when it comes in)
//   POST /release answers the held /slow requests
//   upgrade /ws/  websocket echo (the repo's `ws` devDependency)
import { createServer } from 'node:http'
import { WebSocketServer } from 'ws'

const held = []
const server = createServer((req, res) => {
  if (req.url === '/hello') {
    res.writeHead(200, {
      'content-type': 'application/json',
      'access-control-allow-origin': '*',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'x-upstream-secret'
    })
    res.end(JSON.stringify({ hello: 'from upstream', origin: req.headers.origin ?? null }))
  } else if (req.url === '/slow') {
    held.push(res)
    console.log('slow received')
  } else if (req.url === '/release' && req.method === 'POST') {
    for (const r of held.splice(0)) { r.writeHead(200, { 'content-type': 'text/plain' }); r.end('slow done') }
    res.end('released')
  } else {
    res.writeHead(404).end()
  }
})
const wss = new WebSocketServer({ noServer: true })
server.on('upgrade', (req, socket, head) => {
  if (!req.url.startsWith('/ws/')) { socket.destroy(); return }
  wss.handleUpgrade(req, socket, head, (ws) => { ws.on('message', (data) => { ws.send(`echo: ${data}`) }) })
})
server.listen(0, '127.0.0.1', () => { console.log(JSON.stringify({ port: server.address().port })) })
process.on('SIGTERM', () => { server.closeAllConnections(); server.close(); wss.close() })
