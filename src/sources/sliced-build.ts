// Runs the snapshot build (policy/snapshot.ts `snapshotBuild`) in slices for the Redis
// source: at most `sliceBudgetMs` of work at a time, yielding to the event loop between
// slices, so requests keep being answered while a 100k-entry whitelist compiles. It lives
// here, not in policy/, because it schedules; the build itself is policy/'s, the same one
// `buildSnapshot` runs whole.
import type { EntryError } from '../policy/compile.js'
import { snapshotBuild, type PatternCache, type PolicySnapshot, type SnapshotInput } from '../policy/snapshot.js'

/** How long one slice of a sliced build may run before it yields to the event loop (ms). */
export const SLICE_BUDGET_MS = 8

export interface SliceOptions {
  /** How long one slice may run before yielding (ms). */
  sliceBudgetMs?: number
  /** Parsed patterns of the previous build, so a reload only parses what changed. */
  cache?: PatternCache
}

/** `buildSnapshot`, in slices: the same steps, the same result. */
export async function buildSnapshotInSlices (input: SnapshotInput, errors: EntryError[], { sliceBudgetMs = SLICE_BUDGET_MS, cache }: SliceOptions = {}): Promise<PolicySnapshot> {
  const steps = snapshotBuild(input, errors, cache)
  let sliceStart = performance.now()
  for (;;) {
    const step = steps.next()
    if (step.done === true) return step.value
    if (performance.now() - sliceStart >= sliceBudgetMs) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      sliceStart = performance.now()
    }
  }
}
