// A real Socket.IO server on port 0 that records what reached it: raw HTTP requests and
// upgrades (before engine.io sees them), engine.io and Socket.IO connections, errors.
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server } from 'socket.io'

export interface SocketIoUpstream {
  url: string
  port: number
  http: HttpServer
  io: Server
  requests: IncomingMessage[]
  upgrades: IncomingMessage[]
  /** TCP connections accepted. */
  tcpConnections: number
  /** engine.io and Socket.IO connections. */
  engineConnections: number
  connections: number
  /** engine.io `connection_error` events, e.g. "Session ID unknown". */
  errors: Array<{ code: number, message: string }>
  /** Resolves once no engine.io session is open (clients closed, polls answered). */
  idle: () => Promise<void>
  close: () => Promise<void>
}

export async function startSocketIoUpstream (name = 'upstream', port = 0): Promise<SocketIoUpstream> {
  const http = createServer()
  const requests: IncomingMessage[] = []
  const upgrades: IncomingMessage[] = []
  const io = new Server(http)
  // After engine.io attached (it removes every earlier 'request' listener), and in front of it.
  http.prependListener('request', (req) => { requests.push(req) })
  http.prependListener('upgrade', (req) => { upgrades.push(req) })
  http.on('connection', () => { up.tcpConnections++ })
  const up: SocketIoUpstream = {
    url: '',
    port: 0,
    http,
    io,
    requests,
    upgrades,
    tcpConnections: 0,
    engineConnections: 0,
    connections: 0,
    errors: [],
    idle: async () => {
      if (io.engine.clientsCount === 0) return
      await new Promise<void>((resolve) => idleWaiters.push(resolve))
    },
    close: async () => {
      io.disconnectSockets(true)
      http.closeAllConnections()
      await new Promise<void>((resolve) => { void io.close(() => resolve()) })
    }
  }
  // The upstream's own session cookie, as a Laravel or Express app behind corsgate would set.
  io.engine.on('initial_headers', (headers: Record<string, string>) => { headers['set-cookie'] = 'app_session=from-upstream; Path=/; HttpOnly' })
  const idleWaiters: Array<() => void> = []
  io.engine.on('connection', (socket: { once: (event: 'close', fn: () => void) => void }) => {
    up.engineConnections++
    socket.once('close', () => {
      // engine.io counts the socket out after its own 'close' listeners ran.
      setImmediate(() => { if (io.engine.clientsCount === 0) for (const w of idleWaiters.splice(0)) w() })
    })
  })
  io.engine.on('connection_error', (err: { code: number, message: string }) => { up.errors.push({ code: err.code, message: err.message }) })
  io.on('connection', (socket) => {
    up.connections++
    socket.on('echo', (msg: unknown, ack: (reply: unknown) => void) => ack(msg))
    socket.on('whoami', (ack: (reply: unknown) => void) => ack({ name, cookie: socket.request.headers.cookie ?? null, origin: socket.request.headers.origin ?? null }))
  })
  await new Promise<void>((resolve) => http.listen(port, '127.0.0.1', resolve))
  up.port = (http.address() as AddressInfo).port
  up.url = `http://127.0.0.1:${up.port}`
  return up
}
