// Micro-benchmark of observation: `decide()` alone, `decide()` + `OriginObserver.record()`, and
// `record()` alone, per call, in alternating rounds (order reversed every other round). 1024
// known origins (all within maxOrigins, so every record hits an existing row) against a policy
// of 10k entries. Two kinds of input: the same string objects every round (their hash is cached
// after the first lookup) and fresh copies per round, as the HTTP parser hands a new string per
// request (the Map lookup hashes it). Reported: median and best round; on a shared machine
// noise only adds time, so the best round is the steadier figure for a difference.
// usage: node --import tsx bench/observe.ts [--quick]   → one JSON line on stdout
import { policySchema } from '../src/config/schema.js'
import { compilePolicy, fileEntries, parseEntries, type CompiledPolicy, type EntryError } from '../src/policy/compile.js'
import { decide, type RequestFacts } from '../src/policy/decide.js'
import { OriginObserver } from '../src/observe/origin-table.js'
import { makeWhitelist } from './whitelist.js'

const quick = process.argv.includes('--quick')
// Many short rounds: each round measures every kind back to back, so a round's difference
// between kinds sees the same machine load; the median of those paired differences is the
// figure least moved by other processes on a shared machine.
const ROUNDS = quick ? 61 : 301
const ITERATIONS = 16 * 1024
const ORIGINS = 1024

function compile (origins: string[]): CompiledPolicy {
  const config = policySchema.parse({ origins })
  const errors: EntryError[] = []
  const raw = fileEntries('bench', config)
  return compilePolicy({ name: 'bench', config, allow: parseEntries(raw.allow, errors), deny: parseEntries(raw.deny, errors) }, errors)
}

const list = makeWhitelist(10_000, 342)
const policy = compile(list.all)
const probes = [...list.allowedProbes, ...list.deniedProbes].slice(0, ORIGINS)
const observer = new OriginObserver({ maxOrigins: 10_000, retentionMs: 7 * 86_400_000 })
const facts = (origins: string[]): RequestFacts[] => origins.map((origin) => ({ origin, selfOrigin: 'http://gateway.internal', method: 'GET', now: 0 }))
// A new sequential string with the same bytes, like the one Node's HTTP parser makes per request.
const fresh = (): RequestFacts[] => facts(probes.map((o) => Buffer.from(o, 'latin1').toString('latin1')))
const cached = facts(probes)
for (const f of cached) { const d = decide(policy, f); observer.record('bench', f.origin, d.outcome, d.reason, '/') }

let sink = 0
// Every decision escapes, as in the gateway (it is kept in the request's state): otherwise V8
// may drop the allocation from the decide-only loop and the difference would bill it to recording.
let escaped: unknown
type Kind = 'decide' | 'decide+record' | 'record'
/** ns per call of `kind` over `inputs` (each an array of facts, run once each, in turn). */
function run (kind: Kind, inputs: RequestFacts[][]): number {
  // Decisions precomputed for `record` alone, so it measures only the recording.
  const decisions = kind === 'record' ? inputs[0]!.map((f) => decide(policy, f)) : []
  let calls = 0
  const t0 = process.hrtime.bigint()
  for (const input of inputs) {
    for (let i = 0; i < input.length; i++) {
      const f = input[i]!
      if (kind === 'record') {
        const d = decisions[i]!
        observer.record('bench', f.origin, d.outcome, d.reason, '/')
      } else {
        const d = decide(policy, f)
        if (kind === 'decide+record') observer.record('bench', f.origin, d.outcome, d.reason, '/')
        if (d.allowed) sink++
        escaped = d
      }
    }
    calls += input.length
  }
  return Number(process.hrtime.bigint() - t0) / calls
}

const PASSES = Math.ceil(ITERATIONS / ORIGINS)
const cachedInputs = Array.from({ length: PASSES }, () => cached)
// Fresh strings: every call looks up a string object never hashed before.
const freshInputs = (): RequestFacts[][] => Array.from({ length: PASSES }, fresh)

const kinds: Kind[] = ['decide', 'decide+record', 'record']
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]! }
for (const k of kinds) { run(k, cachedInputs); run(k, freshInputs()) }

const raw: Record<string, number[]> = {}
const paired: Record<string, number[]> = { sameStrings: [], freshStrings: [] }
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 0 ? kinds : [...kinds].reverse()
  const round: Record<string, number> = {}
  for (const k of order) {
    round[`${k}/same-strings`] = run(k, cachedInputs)
    round[`${k}/fresh-strings`] = run(k, freshInputs())
  }
  for (const [k, v] of Object.entries(round)) (raw[k] ??= []).push(v)
  paired.sameStrings!.push(round['decide+record/same-strings']! - round['decide/same-strings']!)
  paired.freshStrings!.push(round['decide+record/fresh-strings']! - round['decide/fresh-strings']!)
}
const summary = Object.fromEntries(Object.entries(raw).map(([k, xs]) => [k, { medianNs: +median(xs).toFixed(1), bestNs: +Math.min(...xs).toFixed(1) }]))
const q = (xs: number[], p: number): number => { const s = [...xs].sort((a, b) => a - b); return +s[Math.floor(p * (s.length - 1))]!.toFixed(1) }
const spread = (xs: number[]) => ({ medianNs: q(xs, 0.5), p25Ns: q(xs, 0.25), p75Ns: q(xs, 0.75) })
console.log(JSON.stringify({
  iterations: PASSES * ORIGINS,
  rounds: ROUNDS,
  origins: ORIGINS,
  summary,
  // What recording adds to a decision: (decide + record) − decide, paired within each round.
  recordingCost: { sameStrings: spread(paired.sameStrings!), freshStrings: spread(paired.freshStrings!) },
  rows: observer.table('bench')!.rows.size,
  sink: sink > 0 && escaped !== undefined
}))
observer.close()
