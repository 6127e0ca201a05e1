// Micro-benchmark of the decision alone: `decide()` against a policy of 10 origins and one
// of 100k (exact and wildcard mixed), alternating rounds, median ns per decision. Two probe
// sets: the same few origins every time (the algorithm's cost), and 1024 distinct origins
// spread over the list (adds the cache misses a big hash table costs). Reported: the median and
// the best round; on a shared machine noise only ever adds time, so the best round is the
// steadier figure for a ratio.
// usage: node --import tsx bench/decide.ts [--quick]   → one JSON line on stdout
import { policySchema } from '../src/config/schema.js'
import { compilePolicy, fileEntries, parseEntries, type CompiledPolicy, type EntryError } from '../src/policy/compile.js'
import { decide, type RequestFacts } from '../src/policy/decide.js'
import { makeWhitelist } from './whitelist.js'

const quick = process.argv.includes('--quick')
const SIZES = [10, 10_000, 100_000]
const ROUNDS = quick ? 7 : 15
const ITERATIONS = quick ? 100_000 : 200_000

function compile (origins: string[]): CompiledPolicy {
  const config = policySchema.parse({ origins })
  const errors: EntryError[] = []
  const raw = fileEntries('bench', config)
  const policy = compilePolicy({ name: 'bench', config, allow: parseEntries(raw.allow, errors), deny: parseEntries(raw.deny, errors) }, errors)
  if (errors.length > 0) throw new Error(`bad bench entries: ${errors[0]!.message}`)
  return policy
}

function factsFor (origins: string[]): RequestFacts[] {
  return origins.map((origin) => ({ origin, selfOrigin: 'http://gateway.internal', method: 'GET', now: 0 }))
}

interface Case { size: number, policy: CompiledPolicy, few: RequestFacts[], spread: RequestFacts[] }

const cases: Case[] = SIZES.map((size) => {
  const few = makeWhitelist(size, 2)
  const spread = makeWhitelist(size, 342)
  return {
    size,
    policy: compile(few.all),
    // exact hit, wildcard hit, wildcard hit, exact hit, miss, miss: two thirds allowed.
    few: factsFor([...few.allowedProbes, ...few.deniedProbes]),
    spread: factsFor([...spread.allowedProbes, ...spread.deniedProbes].slice(0, 1024))
  }
})

let sink = 0
function nsPerDecision (policy: CompiledPolicy, facts: RequestFacts[]): number {
  const n = facts.length
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < ITERATIONS; i++) {
    const d = decide(policy, facts[i % n]!)
    if (d.allowed) sink++
  }
  return Number(process.hrtime.bigint() - t0) / ITERATIONS
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]! }

// Warm-up: every case, both probe sets, so all of them run optimised code.
for (const c of cases) { nsPerDecision(c.policy, c.few); nsPerDecision(c.policy, c.spread) }

const raw: Record<string, { few: number[], spread: number[] }> = {}
for (const c of cases) raw[c.size] = { few: [], spread: [] }
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? cases : [...cases].reverse()
  for (const c of order) {
    raw[c.size]!.few.push(nsPerDecision(c.policy, c.few))
    raw[c.size]!.spread.push(nsPerDecision(c.policy, c.spread))
  }
}
const best = (xs: number[]): number => Math.min(...xs)
const result = Object.fromEntries(cases.map((c) => [c.size, {
  fewNs: median(raw[c.size]!.few),
  spreadNs: median(raw[c.size]!.spread),
  fewBestNs: best(raw[c.size]!.few),
  spreadBestNs: best(raw[c.size]!.spread),
  raw: raw[c.size]
}]))
console.log(JSON.stringify({ iterations: ITERATIONS, rounds: ROUNDS, sizes: result, sink: sink > 0 }))
