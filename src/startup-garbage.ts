// Gives back what starting took, where the process was started to allow it. Loading the
// modules, parsing the config and compiling the policies allocate a great deal at once, so
// V8 grows its young generation to the largest size it has; an idle gateway allocates next to
// nothing, never starts another collection, and holds that memory (and the dead startup
// objects) for as long as it stays idle. One full, memory-reducing collection once the
// gateway listens returns it. That collection also shrinks the young generation to its floor,
// and V8 grows it back only slowly under load: with the default 1 MiB floor every request
// would then pay for many more scavenges than the memory is worth. So it runs only when node
// was started with a floor of its own, `--min-semi-space-size` (the container image sets it).
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

interface GcOptions { type: 'major', execution: 'sync', flavor: 'last-resort' }
type Gc = (options: GcOptions) => void

/** Whether this process's young generation has a floor set on the command line. */
export function youngGenerationFloorSet (execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((arg) => arg.startsWith('--min-semi-space-size') || arg.startsWith('--min_semi_space_size'))
}

/** One synchronous memory-reducing collection (a few milliseconds, once, at start), when the floor is set. */
export function collectStartupGarbage (): boolean {
  if (!youngGenerationFloorSet()) return false
  let gc = (globalThis as { gc?: Gc }).gc
  if (gc === undefined) {
    // `gc` for a fresh context only: the flag is set back at once, and the process's own global
    // object never gets a `gc`.
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as Gc
    setFlagsFromString('--no-expose-gc')
  }
  // `last-resort` is V8's collection that also compacts and gives memory back to the system;
  // Node 20's V8 ignores the option and collects as usual.
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  return true
}
