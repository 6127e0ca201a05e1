// Summarises a V8 .cpuprofile (from `node --cpu-prof`): the top functions by self time and
// by package, so a profile can be read in a terminal and quoted in RESULTS.md.
// usage: node bench/profile-summary.mjs FILE.cpuprofile [TOP=25]
import { readFileSync } from 'node:fs'

const [file, topArg] = process.argv.slice(2)
const top = Number(topArg ?? 25)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map()
const intervals = profile.timeDeltas
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]
  self.set(id, (self.get(id) ?? 0) + (intervals[i] ?? 0))
}
// Idle time (waiting in epoll) is not cost: percentages are of busy time.
let idle = 0
for (const [id, us] of self) if (byId.get(id).callFrame.functionName === '(idle)') { idle += us; self.delete(id) }
const total = [...self.values()].reduce((a, b) => a + b, 0)

function where (cf) {
  const url = cf.url.replace(/^file:\/\//, '')
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m !== null) return m[1]
  if (url.includes('/dist/') || url.includes('/src/')) return 'corsgate'
  if (url.startsWith('node:') || url === '') return cf.functionName.startsWith('(') ? cf.functionName : 'node'
  return url
}

const fns = new Map()
const pkgs = new Map()
for (const [id, us] of self) {
  const cf = byId.get(id).callFrame
  const short = cf.url.replace(/^.*node_modules\//, '').replace(/^.*\/(dist|src)\//, '$1/').replace(/^file:\/\//, '')
  const key = `${cf.functionName || '(anonymous)'} ${short}:${cf.lineNumber + 1}`
  fns.set(key, (fns.get(key) ?? 0) + us)
  const p = where(cf)
  pkgs.set(p, (pkgs.get(p) ?? 0) + us)
}
const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`
console.log(`busy ${(total / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s`)
console.log('\nself time by package:')
for (const [k, v] of [...pkgs].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`${pct(v)}  ${k}`)
// Inclusive time: each function's own time plus everything it called (counted once per
// sample even when the function recurses), the view that shows what a hook or a library call costs.
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const inclusive = new Map()
for (const [id, us] of self) {
  const seen = new Set()
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const cf = byId.get(cur).callFrame
    const short = cf.url.replace(/^.*node_modules\//, '').replace(/^.*\/(dist|src)\//, '$1/').replace(/^file:\/\//, '')
    const key = `${cf.functionName || '(anonymous)'} ${short}:${cf.lineNumber + 1}`
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + us)
  }
}
const filter = process.env.INCLUSIVE_FILTER === undefined ? undefined : new RegExp(process.env.INCLUSIVE_FILTER)
console.log(`\ntop ${top} functions by inclusive time${filter === undefined ? '' : ` matching ${filter}`}:`)
for (const [k, v] of [...inclusive].filter(([k]) => filter === undefined || filter.test(k)).sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v)}  ${k}`)
console.log(`\ntop ${top} functions by self time:`)
for (const [k, v] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v)}  ${k}`)
