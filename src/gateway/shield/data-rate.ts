// Data-rate floors (Kestrel's MinRequestBodyDataRate and MinResponseDataRate): a client that
// sends its body, or reads the answer, slower than `bytesPerSecond` once `graceMs` of waiting
// has passed is cut, so a slow client cannot hold a connection (and what it costs) for as long
// as it likes. The clock runs only while data is waiting on the client, from the moment it
// started waiting (what a client took before — into kernel buffers, say — is no credit): a
// long-poll that has nothing to send, or a stream between two events, is never slow.

export type Direction = 'request' | 'response'

/** One body being moved, as the floor sees it. */
export interface Transfer {
  readonly direction: Direction
  /** Bytes moved so far (received from, or delivered to, the client). */
  bytes: () => number
  /** True while data is waiting on the client. */
  waiting: () => boolean
  /** Ends the transfer: the client is too slow. */
  cut: () => void
}

interface Watched {
  transfer: Transfer
  /** When the client started keeping data waiting, and how many bytes had moved by then. */
  waitingSince: number | undefined
  bytesThen: number
}

export class DataRateFloor {
  private readonly watched = new Set<Watched>()
  private timer: NodeJS.Timeout | undefined
  private readonly tickMs: number

  constructor (
    private readonly bytesPerSecond: number,
    private readonly graceMs: number,
    private readonly onCut: (direction: Direction) => void
  ) {
    this.tickMs = Math.max(50, Math.min(1000, Math.floor(graceMs / 4) || 1000))
  }

  get enabled (): boolean {
    return this.bytesPerSecond > 0
  }

  /** Starts watching; the returned function stops it (call it when the transfer ends). */
  watch (transfer: Transfer): () => void {
    if (!this.enabled) return noop
    const w: Watched = { transfer, waitingSince: undefined, bytesThen: 0 }
    this.watched.add(w)
    if (this.timer === undefined) {
      this.timer = setInterval(() => { this.check() }, this.tickMs)
      this.timer.unref()
    }
    return () => { this.forget(w) }
  }

  private forget (w: Watched): void {
    this.watched.delete(w)
    if (this.watched.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  private check (): void {
    const now = performance.now()
    for (const w of this.watched) {
      if (!w.transfer.waiting()) {
        w.waitingSince = undefined
        continue
      }
      if (w.waitingSince === undefined) {
        w.waitingSince = now
        w.bytesThen = w.transfer.bytes()
        continue
      }
      const due = this.bytesPerSecond * (now - w.waitingSince - this.graceMs) / 1000
      if (due > 0 && w.transfer.bytes() - w.bytesThen < due) {
        this.forget(w)
        this.onCut(w.transfer.direction)
        w.transfer.cut()
      }
    }
  }
}

function noop (): void {}
