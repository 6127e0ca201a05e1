// Gives back what starting took. Loading the modules, parsing the config and compiling the
// policies allocate a great deal at once, so V8 grows its young generation to the largest
// size it has and keeps it; an idle gateway allocates next to nothing, never starts another
// collection, and would hold that memory (and the dead startup objects) for as long as it
// stays idle. One full, memory-reducing collection once the gateway listens returns it, as
// V8 itself does for a process it sees go idle after it has been busy.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

interface GcOptions { type: 'major', execution: 'sync', flavor: 'last-resort' }
type Gc = (options: GcOptions) => void

/** One synchronous memory-reducing collection (a few milliseconds, once, at start). */
export function collectStartupGarbage (): void {
  let gc = (globalThis as { gc?: Gc }).gc
  if (gc === undefined) {
    // `gc` for a fresh context only: the flag is set back at once, and the process's own global
    // object never gets a `gc`.
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as Gc
    setFlagsFromString('--no-expose-gc')
  }
  // `last-resort` is V8's collection that also shrinks the young generation and compacts;
  // Node 20's V8 ignores the option and collects as usual.
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
}
