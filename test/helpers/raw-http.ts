// Raw HTTP/1.1 over a net.Socket: the bytes are sent exactly as written, so framing attacks
// (smuggling, obs-fold, bare LF, slowloris) reach the gateway's parser untouched by a client.
import { connect, type Socket } from 'node:net'

export interface RawResponse {
  /** Everything the server sent before closing the connection, as latin1. */
  raw: string
  /** Status of the first response, or 0 when the server closed without answering. */
  status: number
  /** Header lines of the first response, names lower-cased, in the order sent. */
  headers: Array<[string, string]>
  body: string
}

export function hostPort (url: string): { host: string, port: number } {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port) }
}

/** Opens a connection and resolves once it is established. */
export async function openSocket (url: string): Promise<Socket> {
  const { host, port } = hostPort(url)
  const socket = connect(port, host)
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return socket
}

/** Collects what the server sends until it closes the connection. */
export async function readUntilClose (socket: Socket): Promise<RawResponse> {
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  await new Promise<void>((resolve) => {
    socket.once('close', () => resolve())
    // A reset is a close too: what matters here is what arrived before it.
    socket.on('error', () => {})
  })
  return parseResponse(Buffer.concat(chunks).toString('latin1'))
}

/**
 * Sends `bytes` (a latin1 string: one char, one byte) on a fresh connection and returns what
 * came back once the server closed it. A request the server accepts must ask for
 * `Connection: close` (a half-close would make Node abort the request in flight).
 */
export async function sendRaw (url: string, bytes: string | Buffer): Promise<RawResponse> {
  const socket = await openSocket(url)
  const done = readUntilClose(socket)
  socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes)
  return await done
}

export function parseResponse (raw: string): RawResponse {
  const end = raw.indexOf('\r\n\r\n')
  const head = end < 0 ? raw : raw.slice(0, end)
  const lines = head.split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')
  const headers: Array<[string, string]> = []
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon > 0) headers.push([line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()])
  }
  return { raw, status: m === null ? 0 : Number(m[1]), headers, body: end < 0 ? '' : raw.slice(end + 4) }
}

/** Every value of header `name` (lower-case) in a raw response. */
export function headerValues (res: RawResponse, name: string): string[] {
  return res.headers.filter(([n]) => n === name).map(([, v]) => v)
}
