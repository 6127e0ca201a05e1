// The fragile backend of bench/attacks.ts: serves one request at a time, as `php artisan serve`
// does. A request holds the backend from its head's arrival until its answer is out (or its
// connection is gone), every other request waits behind it. SERIAL=0 serves them all at once
// (the throughput part of the bench).
//
//   GET /big        BIG_BYTES (2 MiB) of text, for the slow-read attack
//   GET /answer64k  64 KiB of JSON
//   anything else   a small JSON answer; request bodies are read whole first
//
// Counts what the proxy in front costs it, reported over IPC ('stats' → the figures; 'reset'
// → peaks start again from now): open connections, requests holding or waiting for it.
import { createServer } from 'node:http'

const port = Number(process.env.PORT)
const serial = process.env.SERIAL !== '0'
const big = Buffer.alloc(Number(process.env.BIG_BYTES ?? 2 * 1024 * 1024), 'a')
const k64 = Buffer.from(JSON.stringify({ ok: true, pad: 'x'.repeat(64 * 1024 - 22) }))
const small = Buffer.from(JSON.stringify({ ok: true, service: 'serial-upstream', items: [1, 2, 3] }))

const stats = { connections: 0, peakConnections: 0, waiting: 0, peakWaiting: 0, served: 0, bodyBytes: 0 }

let turn = Promise.resolve()

function answer (req, res, bytes) {
  stats.served++
  stats.bodyBytes += bytes
  const body = req.url === '/big' ? big : req.url === '/answer64k' ? k64 : small
  res.writeHead(200, { 'content-type': req.url === '/big' ? 'text/plain' : 'application/json', 'content-length': body.length })
  res.end(req.method === 'HEAD' ? undefined : body)
}

function serve (req, res) {
  return new Promise((resolve) => {
    // Its client may have left while it waited.
    if (res.closed || req.socket.destroyed) return resolve()
    res.once('close', resolve)
    let bytes = 0
    req.on('data', (c) => { bytes += c.length })
    req.on('end', () => { answer(req, res, bytes) })
  })
}

const server = createServer((req, res) => {
  stats.waiting++
  stats.peakWaiting = Math.max(stats.peakWaiting, stats.waiting)
  res.once('close', () => { stats.waiting-- })
  if (serial) turn = turn.then(() => serve(req, res))
  else serve(req, res)
})
server.on('connection', (socket) => {
  stats.connections++
  stats.peakConnections = Math.max(stats.peakConnections, stats.connections)
  socket.once('close', () => { stats.connections-- })
})
server.keepAliveTimeout = 65_000
server.headersTimeout = 66_000
server.requestTimeout = 0
server.maxHeadersCount = 0

process.on('message', (m) => {
  if (m === 'reset') {
    stats.peakConnections = stats.connections
    stats.peakWaiting = stats.waiting
    stats.served = 0
    stats.bodyBytes = 0
  }
  process.send({ stats })
})
server.listen(port, '127.0.0.1', () => process.send?.('ready'))
process.on('SIGTERM', () => process.exit(0))
process.on('disconnect', () => process.exit(0))
