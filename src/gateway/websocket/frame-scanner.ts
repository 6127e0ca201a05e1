// Frame boundaries of one direction of a websocket tunnel (RFC 6455 §5.2), without parsing
// payloads: the tunnel reads only the 2-14 byte header of each frame and skips the payload
// length it announces. That is enough to
//   - enforce a message size cap (data frames summed until FIN) without buffering or unmasking,
//   - write a close frame of our own (shutdown, idle timeout, cap) between two frames, never in
//     the middle of one, so neither peer sees a corrupt stream.
// Payload bytes are passed on as they come; nothing is copied except a header split across
// two reads, which is held back (at most 13 bytes) until the rest arrives.

export type StopReason = 'too_big' | 'closing'

const EMPTY = Buffer.alloc(0)

export class FrameScanner {
  /** Payload bytes of the current frame still to pass. */
  private remaining = 0
  /** Bytes of the current message so far (data frames until FIN). */
  private message = 0
  /** The start of a frame header that ended a read. */
  private held: Buffer | undefined
  /** Set by the tunnel: pass up to the next frame boundary, then stop. */
  stopAtBoundary = false
  /** Why this direction stopped passing bytes; undefined while it goes on. */
  stopped: StopReason | undefined

  constructor (private readonly maxMessageBytes: number) {}

  /** True between two frames: a frame of our own may be written now. */
  get atBoundary (): boolean {
    return this.remaining === 0 && this.held === undefined
  }

  /**
   * Scans one read and returns the part of it to pass on now. After a return shorter than the
   * input, check `stopped`: the rest is dropped (closing) or was over the cap (too_big).
   */
  scan (input: Buffer): Buffer {
    if (this.stopped !== undefined) return EMPTY
    let chunk = input
    if (this.held !== undefined) {
      chunk = Buffer.concat([this.held, input])
      this.held = undefined
    }
    const end = chunk.length
    let pos = 0
    while (pos < end) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, end - pos)
        this.remaining -= take
        pos += take
        continue
      }
      if (this.stopAtBoundary) {
        this.stopped = 'closing'
        return chunk.subarray(0, pos)
      }
      const avail = end - pos
      if (avail < 2) return this.hold(chunk, pos)
      const b0 = chunk[pos]!
      const b1 = chunk[pos + 1]!
      let length = b1 & 0x7f
      const headerLength = 2 + (length === 126 ? 2 : length === 127 ? 8 : 0) + ((b1 & 0x80) !== 0 ? 4 : 0)
      if (avail < headerLength) return this.hold(chunk, pos)
      if (length === 126) length = chunk.readUInt16BE(pos + 2)
      else if (length === 127) length = chunk.readUInt32BE(pos + 2) * 0x1_0000_0000 + chunk.readUInt32BE(pos + 6)
      // Opcodes 0-7 are data (continuation, text, binary, reserved); 8-15 control frames, which
      // are at most 125 bytes and may sit between the fragments of a message.
      if ((b0 & 0x08) === 0) {
        this.message += length
        if (this.message > this.maxMessageBytes) {
          this.stopped = 'too_big'
          return chunk.subarray(0, pos)
        }
        if ((b0 & 0x80) !== 0) this.message = 0
      }
      pos += headerLength
      this.remaining = length
    }
    return chunk
  }

  private hold (chunk: Buffer, pos: number): Buffer {
    this.held = Buffer.from(chunk.subarray(pos))
    return chunk.subarray(0, pos)
  }
}

/** A close frame (RFC 6455 §5.5.1) with `code`; masked (with a zero key) when sent to a server. */
export function closeFrame (code: number, toServer: boolean): Buffer {
  // §5.3: a client's frames must be masked; a zero masking key leaves the payload as it is.
  return toServer
    ? Buffer.from([0x88, 0x82, 0, 0, 0, 0, code >> 8, code & 0xff])
    : Buffer.from([0x88, 0x02, code >> 8, code & 0xff])
}
