// A raw HTTP/2 client over TLS for the attack tests: writes frames exactly as given (RFC 9113
// §4.1), with header blocks encoded as HPACK literals (RFC 7541 §6.2.2, no Huffman), and
// reports the frames the server sends back. Node's own client refuses to send what these
// tests need to send.
import { once } from 'node:events'
import { connect, type TLSSocket } from 'node:tls'

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, CONTINUATION: 0x9 } as const
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const

export interface Frame { type: number, flags: number, stream: number, payload: Buffer }

export interface RawH2 {
  socket: TLSSocket
  frames: Frame[]
  send: (type: number, flags: number, stream: number, payload?: Buffer) => boolean
  /** Resolves with the first frame (seen or to come) that `match` accepts, or undefined once the connection closes. */
  waitFor: (match: (f: Frame) => boolean) => Promise<Frame | undefined>
  closed: Promise<void>
}

function integer (value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1
  if (value < max) return Buffer.from([firstByte | value])
  const out = [firstByte | max]
  let rest = value - max
  while (rest >= 128) {
    out.push((rest % 128) + 128)
    rest = Math.floor(rest / 128)
  }
  out.push(rest)
  return Buffer.from(out)
}

function text (s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1')
  return Buffer.concat([integer(bytes.length, 7, 0), bytes])
}

/** A header block: each pair as a literal without indexing, with a literal name. */
export function headerBlock (pairs: Array<[string, string]>): Buffer {
  return Buffer.concat(pairs.flatMap(([n, v]) => [Buffer.from([0x00]), text(n), text(v)]))
}

export async function rawH2 (port: number, ca: Buffer): Promise<RawH2> {
  const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] })
  await once(socket, 'secureConnect')
  if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN chose ${String(socket.alpnProtocol)}`)
  const frames: Frame[] = []
  const waiters: Array<{ match: (f: Frame) => boolean, resolve: (f: Frame | undefined) => void }> = []
  let buffered = Buffer.alloc(0)
  const send = (type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): boolean => {
    if (socket.destroyed || !socket.writable) return false
    const head = Buffer.alloc(9)
    head.writeUIntBE(payload.length, 0, 3)
    head[3] = type
    head[4] = flags
    head.writeUInt32BE(stream & 0x7fffffff, 5)
    return socket.write(Buffer.concat([head, payload]))
  }
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3)
      if (buffered.length < 9 + length) break
      const frame = { type: buffered[3]!, flags: buffered[4]!, stream: buffered.readUInt32BE(5) & 0x7fffffff, payload: buffered.subarray(9, 9 + length) }
      buffered = buffered.subarray(9 + length)
      frames.push(frame)
      if (frame.type === FRAME.SETTINGS && (frame.flags & FLAG.ACK) === 0) send(FRAME.SETTINGS, FLAG.ACK, 0)
      for (const w of [...waiters]) if (w.match(frame)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(frame) }
    }
  })
  socket.on('error', () => {})
  const closed = once(socket, 'close').then(() => {
    for (const w of waiters.splice(0)) w.resolve(undefined)
  })
  socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  send(FRAME.SETTINGS, 0, 0)
  return {
    socket,
    frames,
    send,
    closed,
    waitFor: async (match) => {
      const seen = frames.find(match)
      if (seen !== undefined) return seen
      if (socket.destroyed) return undefined
      return await new Promise((resolve) => { waiters.push({ match, resolve }) })
    }
  }
}
