// Buffers that stand between a slow client and a fragile upstream (nginx's
// `proxy_request_buffering` and `proxy_buffering`): bytes kept in memory up to a size, then in
// a temporary file, so neither a slow upload nor a slow reader holds an upstream connection.
import { createReadStream, createWriteStream, existsSync, mkdtempSync, rmSync, type WriteStream } from 'node:fs'
import { randomUUID } from 'node:crypto'
import { open, unlink, type FileHandle } from 'node:fs/promises'
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

/**
 * A request body's file, in the process's private folder (spillDir). Unlike an answer's, it
 * keeps its name until it has been read back: undici streams it from the path.
 */
function bodyFile (tempDir: string | undefined): { path: string, remove: () => void } {
  const path = join(spillDir(tempDir, !existsSync(spillDir(tempDir, false))), randomUUID())
  return { path, remove: () => { rmSync(path, { force: true }) } }
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
      // Removed once the stream has closed: its file may still be opening.
      if (out !== undefined) out.once('close', () => file?.remove()).destroy()
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
        file = bodyFile(limits.tempDir)
        out = createWriteStream(file.path, { flags: 'wx', mode: 0o600 })
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

/** A spilled answer's file: written in order, a batch at a time, read back behind the writes. */
interface SpillFile {
  readonly handle: Promise<FileHandle>
  /** Chunks not written yet. */
  pending: Buffer[]
  /** Bytes written to the file so far: what can be read back. */
  flushed: number
  flushing: Promise<void> | undefined
  error: Error | undefined
  closed: boolean
}

/**
 * The part of an upstream's answer the client has not taken yet, in order: chunks in memory up
 * to `memoryBytes`, then a temporary file up to `maxFileBytes` (past it `push` says stop, and the
 * upstream is paused until the client catches up). Read back with `take`.
 */
export class ResponseBuffer {
  private readonly memory: Buffer[] = []
  private memoryLength = 0
  private file: SpillFile | undefined
  /** Bytes given to the file (written or pending) and taken back from it. */
  private written = 0
  private read = 0
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
      const handle = openSpillFile(this.limits.tempDir)
      // Failures surface through `take`.
      handle.catch(noop)
      this.file = { handle, pending: [], flushed: 0, flushing: undefined, error: undefined, closed: false }
    }
    const file = this.file
    this.written += chunk.length
    file.pending.push(chunk)
    file.flushing ??= flush(file)
    return this.written - this.read <= this.limits.maxFileBytes
  }

  /** The next bytes for the client, oldest first; undefined when nothing is waiting. */
  async take (): Promise<Buffer | undefined> {
    if (this.memory.length > 0) {
      const chunk = this.memory.shift()!
      this.memoryLength -= chunk.length
      return chunk
    }
    const file = this.file
    if (file === undefined || this.read === this.written) return undefined
    while (file.flushed <= this.read) {
      if (file.error !== undefined) throw file.error
      if (file.flushing === undefined) throw new Error('answer buffer lost track of its file')
      await file.flushing
    }
    const handle = await file.handle
    const want = Math.min(64 * 1024, file.flushed - this.read)
    const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(want), 0, want, this.read)
    if (bytesRead === 0) throw new Error('answer buffer file ended early')
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
    file.closed = true
    file.pending = []
    void (file.flushing ?? Promise.resolve()).then(async () => { await (await file.handle).close() }).catch(noop)
  }
}

/** Writes what is pending, a batch per call (one write in flight per file), until nothing is. */
async function flush (file: SpillFile): Promise<void> {
  try {
    const handle = await file.handle
    while (file.pending.length > 0 && !file.closed) {
      const batch = file.pending
      file.pending = []
      let length = 0
      for (const chunk of batch) length += chunk.length
      const { bytesWritten } = await handle.writev(batch, file.flushed)
      file.flushed += bytesWritten
      // Only a full disk or a file size limit writes short; what follows would land at the
      // wrong offset, so the answer is failed rather than spliced.
      if (bytesWritten < length) throw new Error(`answer buffer file: wrote ${bytesWritten} of ${length} bytes`)
    }
  } catch (error) {
    file.error = error as Error
  } finally {
    file.flushing = undefined
  }
}

/**
 * One folder per process (and temp folder), private to it, for answers' files: created once,
 * rather than a folder per answer, since slow readers can make many answers spill at once.
 */
const spillDirs = new Map<string, string>()

function spillDir (tempDir: string | undefined, fresh: boolean): string {
  const base = tempDir ?? tmpdir()
  let dir = spillDirs.get(base)
  if (dir === undefined || fresh) {
    if (spillDirs.size === 0) process.once('exit', removeSpillDirs)
    dir = mkdtempSync(join(base, 'corsgate-'))
    spillDirs.set(base, dir)
  }
  return dir
}

function removeSpillDirs (): void {
  for (const dir of spillDirs.values()) rmSync(dir, { recursive: true, force: true })
}

/**
 * A new file, unlinked as soon as it is open: its space goes back when the handle is closed,
 * even if the process dies first. Its folder is made again if something removed it (a /tmp
 * cleaner).
 */
async function openSpillFile (tempDir: string | undefined): Promise<FileHandle> {
  let path = join(spillDir(tempDir, false), randomUUID())
  let handle: FileHandle
  try {
    handle = await open(path, 'wx+', 0o600)
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOENT') throw error
    path = join(spillDir(tempDir, true), randomUUID())
    handle = await open(path, 'wx+', 0o600)
  }
  try {
    await unlink(path)
  } catch (error) {
    await handle.close()
    throw error
  }
  return handle
}

function noop (): void {}
