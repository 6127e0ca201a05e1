// The collection after start runs only with a young-generation floor on node's command line
// (src/startup-garbage.ts): without one it would leave the young generation small under load.
import { execFileSync } from 'node:child_process'
import t from 'tap'
import { collectStartupGarbage, youngGenerationFloorSet } from '../../src/startup-garbage.js'

t.test('the floor is read from node\'s command line', async (t) => {
  t.ok(youngGenerationFloorSet(['--min-semi-space-size=16']))
  t.ok(youngGenerationFloorSet(['--enable-source-maps', '--min_semi_space_size=8']))
  t.notOk(youngGenerationFloorSet(['--max-semi-space-size=16']))
  t.notOk(youngGenerationFloorSet([]))
})

t.test('without a floor nothing is collected', async (t) => {
  t.notOk(youngGenerationFloorSet(), 'the test process has no floor')
  t.equal(collectStartupGarbage(), false)
})

t.test('with a floor the collection runs, and leaves no `gc` on the global object', async (t) => {
  const script = `
    const { collectStartupGarbage } = await import('./src/startup-garbage.ts')
    const { getHeapSpaceStatistics } = await import('node:v8')
    const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size
    console.log(JSON.stringify({ ran: collectStartupGarbage(), gc: typeof globalThis.gc, youngMiB: young() / 2 ** 20 }))`
  const out = JSON.parse(execFileSync(process.execPath, ['--min-semi-space-size=16', '--import', 'tsx', '--input-type=module', '-e', script]).toString()) as { ran: boolean, gc: string, youngMiB: number }
  t.equal(out.ran, true)
  t.equal(out.gc, 'undefined')
  t.ok(out.youngMiB >= 16, `the young generation keeps its floor after the collection (${out.youngMiB} MiB)`)
})
