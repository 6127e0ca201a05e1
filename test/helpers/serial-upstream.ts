// An upstream that serves one request at a time, as `php artisan serve` does: a request holds
// the upstream from its head's arrival until its answer is out (or its connection is gone),
// and every other request waits behind it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface SerialUpstream {
  url: string
  server: Server
  /** Requests in the order the upstream began serving them: method, url, body size. */
  served: Array<{ method: string, url: string, bytes: number }>
  /** Answers that were sent whole. */
  finished: number
  close: () => Promise<void>
}

/** `answer` writes the response once the whole body has been read; it may be async. */
export async function startSerialUpstream (answer: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void | Promise<void>): Promise<SerialUpstream> {
  let turn: Promise<void> = Promise.resolve()
  const served: SerialUpstream['served'] = []
  const upstream = { finished: 0 }
  const server = createServer((req, res) => {
    const mine = turn.then(async () => {
      await new Promise<void>((resolve) => {
        res.once('close', resolve)
        const chunks: Buffer[] = []
        req.on('data', (c: Buffer) => chunks.push(c))
        req.on('end', () => {
          const body = Buffer.concat(chunks)
          served.push({ method: req.method ?? '', url: req.url ?? '', bytes: body.length })
          res.once('finish', () => { upstream.finished++ })
          void Promise.resolve(answer(req, res, body)).catch(() => res.destroy())
        })
      })
    })
    turn = mine
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return Object.assign(upstream, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    served,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }) as SerialUpstream
}
