// Per-client limits (nginx's `limit_conn`): open connections per peer address, refused on
// accept, and requests in flight per client address — the first X-Forwarded-For entry behind
// a trusted proxy, the peer otherwise — answered 429. Counts are kept only while non-zero.
import type { IncomingMessage } from 'node:http'
import type { Server, Socket } from 'node:net'
import { clientAddress } from '../balance/upstream-pool.js'

export class ClientLimits {
  private readonly connections = new Map<string, number>()
  private readonly inFlight = new Map<string, number>()

  constructor (
    private readonly maxConnections: number,
    private readonly maxInFlight: number,
    private readonly trustProxy: boolean,
    private readonly onRefused: (reason: 'client_connections') => void
  ) {}

  /** Counts the server's connections per peer; one over the limit is closed at once. */
  attach (server: Server): void {
    if (this.maxConnections === 0) return
    server.on('connection', (socket: Socket) => {
      const address = socket.remoteAddress ?? ''
      const n = (this.connections.get(address) ?? 0) + 1
      if (n > this.maxConnections) {
        this.onRefused('client_connections')
        socket.destroy()
        return
      }
      this.connections.set(address, n)
      socket.once('close', () => { release(this.connections, address) })
    })
  }

  /** False when requests in flight are not limited: then nothing is counted per request. */
  get countsInFlight (): boolean {
    return this.maxInFlight > 0
  }

  /** Counts a request in flight; undefined when the client is over its limit, else the release. */
  enter (req: IncomingMessage): (() => void) | undefined {
    if (this.maxInFlight === 0) return noop
    const client = clientAddress(req.socket?.remoteAddress, req.headers['x-forwarded-for'], this.trustProxy)
    const n = (this.inFlight.get(client) ?? 0) + 1
    if (n > this.maxInFlight) return undefined
    this.inFlight.set(client, n)
    let done = false
    return () => {
      if (done) return
      done = true
      release(this.inFlight, client)
    }
  }
}

function release (counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1
  if (n <= 0) counts.delete(key)
  else counts.set(key, n)
}

function noop (): void {}
