// Buffers that stand between a slow client and a fragile upstream (nginx's
// `proxy_request_buffering` and `proxy_buffering`): bytes kept in memory up to a size, then in
// a temporary file, so neither a slow upload nor a slow reader holds an upstream connection.
import { createReadStream, createWriteStream, mkdtempSync, rmSync, type WriteStream } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { PayloadTooLargeError } from '../errors.js'

export interface BufferLimits {
  /** Bytes kept in memory before the rest goes to a file. */
  memoryBytes: number
  /** Folder of the temporary files (the OS's when undefined). */
  tempDir: string | undefined
  /** Called once when a buffer outgrows memory. */
  onSpill: () => void
}

/** A private folder for one buffer's file, removed with it. */
function tempFile (tempDir: string | undefined, name: string): { path: string, remove: () => void } {
  const dir = mkdtempSync(join(tempDir ?? tmpdir(), 'corsgate-'))
  return { path: join(dir, name), remove: () => { rmSync(dir, { recursive: true, force: true }) } }
}

/** A request body received whole: in memory, or in a file it is read back from. */
export interface BufferedBody {
  readonly length: number
  /** The body for undici: the bytes, or a stream over the file. */
  body: () => Buffer | Readable
  /** Removes the file, if any. Safe to call twice. */
  dispose: () => void
}

/**
 * Receives a request body whole before any upstream connection is taken. Refuses with
 * `PayloadTooLargeError` past `bodyLimit` (a chunked body has no length to check beforehand).
 * Rejects if the client goes away or the body errors.
 */
export async function receiveBody (req: IncomingMessage, bodyLimit: number, limits: BufferLimits): Promise<BufferedBody> {
  return await new Promise<BufferedBody>((resolve, reject) => {
    const chunks: Buffer[] = []
    let length = 0
    let file: { path: string, remove: () => void } | undefined
    let out: WriteStream | undefined
    let settled = false
    const fail = (error: Error): void => {
      if (settled) return
      settled = true
      req.removeListener('data', onData)
      out?.destroy()
      file?.remove()
      reject(error)
    }
    const onData = (chunk: Buffer): void => {
      length += chunk.length
      if (length > bodyLimit) {
        // Not destroyed: the 413 still has to go out on the client's socket.
        req.pause()
        return fail(new PayloadTooLargeError(String(bodyLimit)))
      }
      if (out === undefined && length <= limits.memoryBytes) {
        chunks.push(chunk)
        return
      }
      if (out === undefined) {
        limits.onSpill()
        file = tempFile(limits.tempDir, 'body')
        out = createWriteStream(file.path)
        out.on('error', fail)
        for (const c of chunks) out.write(c)
        chunks.length = 0
      }
      if (!out.write(chunk)) {
        req.pause()
        out.once('drain', () => req.resume())
      }
    }
    req.on('data', onData)
    req.once('error', fail)
    req.once('aborted', () => { fail(new Error('client closed the connection')) })
    req.once('close', () => { if (!req.complete) fail(new Error('client closed the connection')) })
    req.once('end', () => {
      if (settled) return
      settled = true
      if (out === undefined) {
        const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length)
        return resolve({ length, body: () => bytes, dispose: noop })
      }
      const spilled = file!
      out.end(() => {
        let disposed = false
        resolve({
          length,
          body: () => createReadStream(spilled.path),
          dispose: () => { if (!disposed) { disposed = true; spilled.remove() } }
        })
      })
    })
  })
}

/**
 * The part of an upstream's answer the client has not taken yet, in order: chunks in memory up
 * to `memoryBytes`, then a temporary file up to `maxFileBytes` (past it `push` says stop, and the
 * upstream is paused until the client catches up). Read back with `take`.
 */
export class ResponseBuffer {
  private readonly memory: Buffer[] = []
  private memoryLength = 0
  private file: { handle: Promise<FileHandle>, remove: () => void } | undefined
  private written = 0
  private read = 0
  /** Writes to the file, in order; reads wait for them. */
  private writes: Promise<unknown> = Promise.resolve()
  private spilled = false

  constructor (private readonly limits: BufferLimits & { maxFileBytes: number }) {}

  /** Bytes waiting for the client. */
  get size (): number {
    return this.memoryLength + (this.written - this.read)
  }

  /** Keeps `chunk`; false when the buffer is full and the upstream should wait. */
  push (chunk: Buffer): boolean {
    if (this.file === undefined && this.memoryLength + chunk.length <= this.limits.memoryBytes) {
      this.memory.push(chunk)
      this.memoryLength += chunk.length
      return true
    }
    if (this.file === undefined) {
      if (!this.spilled) {
        this.spilled = true
        this.limits.onSpill()
      }
      const { path, remove } = tempFile(this.limits.tempDir, 'answer')
      this.file = { handle: open(path, 'w+'), remove }
    }
    const at = this.written
    this.written += chunk.length
    const handle = this.file.handle
    this.writes = this.writes.then(async () => await (await handle).write(chunk, 0, chunk.length, at))
    return this.written - this.read <= this.limits.maxFileBytes
  }

  /** The next bytes for the client, oldest first; undefined when nothing is waiting. */
  async take (): Promise<Buffer | undefined> {
    if (this.memory.length > 0) {
      const chunk = this.memory.shift()!
      this.memoryLength -= chunk.length
      return chunk
    }
    if (this.file === undefined || this.read === this.written) return undefined
    await this.writes
    const handle = await this.file.handle
    const want = Math.min(64 * 1024, this.written - this.read)
    const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(want), 0, want, this.read)
    this.read += bytesRead
    // Drained: the next chunks go to memory again, and the file is given back.
    if (this.read === this.written) this.dispose()
    return buffer.subarray(0, bytesRead)
  }

  /** Gives the file back. Safe to call twice. */
  dispose (): void {
    const file = this.file
    if (file === undefined) return
    this.file = undefined
    this.written = 0
    this.read = 0
    const writes = this.writes
    this.writes = Promise.resolve()
    void writes.catch(noop).then(async () => { await (await file.handle).close() }).catch(noop).finally(file.remove)
  }
}

function noop (): void {}
