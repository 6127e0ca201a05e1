// Paths of command-line tools the tests use when the machine has them.
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/** Debian's `prometheus` package installs it at /usr/bin/promtool. */
export function findPromtool (): string | null {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin']) {
    try {
      accessSync(join(dir, 'promtool'), constants.X_OK)
      return join(dir, 'promtool')
    } catch {}
  }
  return null
}
