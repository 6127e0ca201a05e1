// Keyspace-event detection: does the server publish keyspace notifications for the policy
// keys? Used when it does, never required (the reload channel and polling always apply).
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { KeyspaceEvents } from './redis-state.js'

export interface KeyspaceDetectionOptions {
  /** `redis.enableKeyspaceEvents`: turn them on with CONFIG SET when they are off. */
  enable: boolean
  log: Logger
  /** Called with every finding that differs from the last one (and with the first). */
  found: (found: KeyspaceEvents) => void
}

/**
 * We only read the setting (CONFIG may be refused on managed Redis) and set it only when the
 * config asks to. The source reads it again on every poll, so `/readyz` follows an operator
 * who turns them on (or off) while corsgate runs; a finding is logged only when it changes.
 */
export class KeyspaceDetection {
  private readonly enable: boolean
  private readonly log: Logger
  private readonly found: (found: KeyspaceEvents) => void
  private last: KeyspaceEvents = 'unknown'
  /** Detection has answered at least once (its first answer is always logged). */
  private known = false

  constructor ({ enable, log, found }: KeyspaceDetectionOptions) {
    this.enable = enable
    this.log = log
    this.found = found
  }

  async detect (client: Redis): Promise<void> {
    let flags: string
    try {
      flags = configValue(await client.config('GET', 'notify-keyspace-events'))
    } catch (err) {
      this.record('unknown', () => this.log.info({ err: (err as Error).message }, 'CONFIG GET refused: cannot tell whether keyspace notifications are on (the reload channel and polling still apply)'))
      return
    }
    if (coversPolicyKeys(flags)) {
      this.record('enabled', () => this.log.info({ flags }, 'keyspace notifications are on: edits are in force at once'))
      return
    }
    if (this.enable) {
      const wanted = mergeFlags(flags, 'Kgsz')
      try {
        await client.config('SET', 'notify-keyspace-events', wanted)
        this.record('enabled', () => this.log.info({ flags: wanted }, 'keyspace notifications turned on (redis.enableKeyspaceEvents)'))
        return
      } catch (err) {
        if (this.last !== 'disabled') this.log.warn({ err: (err as Error).message }, 'CONFIG SET notify-keyspace-events refused; relying on the reload channel and polling')
      }
    }
    this.record('disabled', () => this.log.info({ flags }, 'keyspace notifications are off on the server: edits propagate by the reload channel, or by polling'))
  }

  /** `say` logs the finding, only when it differs from the last one. */
  private record (found: KeyspaceEvents, say: () => void): void {
    if (found === this.last && this.known) return
    this.known = true
    this.last = found
    say()
    this.found(found)
  }
}

/** Do these `notify-keyspace-events` flags publish keyspace events for SET, ZSET and DEL? */
export function coversPolicyKeys (flags: string): boolean {
  if (!flags.includes('K')) return false
  return flags.includes('A') || (flags.includes('g') && flags.includes('s') && flags.includes('z'))
}

/** `CONFIG GET` answers `[name, value]` (RESP2) or `{ name: value }` (RESP3 maps). */
function configValue (reply: unknown): string {
  if (Array.isArray(reply)) return String(reply[1] ?? '')
  if (reply !== null && typeof reply === 'object') return String(Object.values(reply)[0] ?? '')
  return ''
}

function mergeFlags (current: string, wanted: string): string {
  let out = current
  for (const c of wanted) if (!out.includes(c)) out += c
  return out
}
