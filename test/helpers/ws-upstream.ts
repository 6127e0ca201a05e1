// A websocket echo upstream (ws) for tests: records the upgrade requests it accepted.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'

export interface WsUpstream {
  url: string
  server: Server
  wss: WebSocketServer
  /** Upgrade requests as the upstream saw them. */
  upgrades: IncomingMessage[]
  close: () => Promise<void>
}

/** A ws echo server; `close:<code>` makes it close with that code. */
export async function startWsEcho (): Promise<WsUpstream> {
  const server = createServer((_req, res) => { res.statusCode = 426; res.end() })
  const wss = new WebSocketServer({ server, handleProtocols: (protocols) => [...protocols].at(-1) ?? false })
  const upgrades: IncomingMessage[] = []
  wss.on('connection', (ws, req) => {
    upgrades.push(req)
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString()
      if (text.startsWith('close:')) ws.close(Number(text.slice(6)), 'upstream says bye')
      else ws.send(data, { binary: isBinary })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    wss,
    upgrades,
    close: async () => {
      for (const c of wss.clients) c.terminate()
      wss.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
