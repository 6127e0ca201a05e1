// The last few hundred decisions, for the admin page's live view (SPEC.md "The admin page").
// A fixed ring: recording overwrites the oldest slot, so memory stays bounded whatever the
// traffic, and a reader asks for what came after the last sequence number it saw.

/** One finished request as the live view shows it. */
export interface DecisionRecord {
  /** Increases by one per request; a reader resumes after the last one it saw. */
  seq: number
  /** Unix ms when the request finished. */
  at: number
  route: string
  policy: string
  kind: string
  method: string
  path: string
  /** The `Origin` header as sent (truncated), null when absent. */
  origin: string | null
  outcome: string
  reason: string
  rule: string | null
  detail: string | null
  status: number
  durationMs: number
}

// An Origin or a path can be as long as the header limit allows; the view needs no more than this.
const MAX_TEXT = 512

function clip (text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text
}

export class DecisionLog {
  private readonly slots: Array<DecisionRecord | undefined>
  private next = 1

  constructor (readonly capacity = 500) {
    this.slots = new Array<DecisionRecord | undefined>(capacity)
  }

  /** The sequence number of the newest record (0 before the first). */
  get last (): number {
    return this.next - 1
  }

  record (entry: Omit<DecisionRecord, 'seq'>): void {
    const seq = this.next++
    this.slots[seq % this.capacity] = {
      seq,
      ...entry,
      origin: entry.origin === null ? null : clip(entry.origin),
      path: clip(entry.path)
    }
  }

  /** Records after `after`, oldest first, at most `limit` (the newest ones when there are more). */
  since (after: number, limit = this.capacity): DecisionRecord[] {
    const newest = this.last
    const oldest = Math.max(after + 1, newest - Math.min(limit, this.capacity) + 1, 1)
    const out: DecisionRecord[] = []
    for (let seq = oldest; seq <= newest; seq++) {
      const r = this.slots[seq % this.capacity]
      if (r !== undefined && r.seq === seq) out.push(r)
    }
    return out
  }
}
