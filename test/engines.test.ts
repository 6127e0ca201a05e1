// package.json's `engines` says the truth: every production dependency in the lockfile runs
// on the oldest Node it admits (so `npm ci` on a supported Node warns no EBADENGINE), and the
// Node running the suite is admitted. CI runs the suite on Node 20 and 24.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import semver from 'semver'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { engines: { node: string } }
const lock = JSON.parse(readFileSync(`${root}package-lock.json`, 'utf8')) as { packages: Record<string, { dev?: boolean, engines?: { node?: string } | string[] }> }

t.test('every production dependency supports the oldest Node that engines admits', async (t) => {
  const oldest = semver.minVersion(pkg.engines.node)
  t.ok(oldest, `engines.node "${pkg.engines.node}" is a range with a minimum`)
  if (oldest === null) return
  let checked = 0
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === '' || entry.dev === true || entry.engines === undefined || Array.isArray(entry.engines)) continue
    const range = entry.engines.node
    if (range === undefined) continue
    checked++
    t.ok(semver.satisfies(oldest, range), `${path.replace(/^node_modules\//, '')} (node ${range}) runs on Node ${oldest.version}`)
  }
  t.ok(checked > 5, `${checked} production packages state an engine`)
})

t.test('the Node running the tests is one engines admits', async (t) => {
  t.ok(semver.satisfies(process.versions.node, pkg.engines.node), `Node ${process.versions.node} satisfies ${pkg.engines.node}`)
})
