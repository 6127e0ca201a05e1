// Pools the JSON files of several `bench/ab.ts` runs (--json FILE) per Node version and prints
// the Markdown tables of RESULTS.md "Pipeline A/B (old vs new)": every round of every run put
// together, the median of the round-pair ratios with a 90 % bootstrap interval, each run's
// medians, and the raw rounds.
// usage: node bench/ab-report.mjs '{"Node v20":["a.json","b.json"],"Node v24":["c.json"]}'
import { readFileSync } from 'node:fs'
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
function boot (xs) { let seed = 42; const rnd = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }; const ms = []; for (let b = 0; b < 5000; b++) ms.push(med(xs.map(() => xs[Math.floor(rnd() * xs.length)]))); ms.sort((a, b) => a - b); return `${ms[250].toFixed(3)}–${ms[4749].toFixed(3)}` }
const groups = JSON.parse(process.argv[2]) // { "Node 20": ["a.json", ...], ... }
const out = []
const pooled = []
for (const [label, files] of Object.entries(groups)) {
  const by = {}
  out.push(`#### ${label}`, '')
  out.push('| run (UTC start) | rounds × s | load avg start → end | scenario | old req/s | new req/s | old CPU µs/req | new CPU µs/req | new/old (medians) | new/old (median of round pairs) |', '|---|---|---|---|---:|---:|---:|---:|---:|---:|')
  for (const f of files) {
    const r = JSON.parse(readFileSync(f, 'utf8'))
    const name = f.split('/').pop().replace('.json', '')
    for (const s of [...new Set(r.results.map((m) => m.scenario))]) {
      const o = r.results.find((m) => m.scenario === s && m.target === 'old')
      const n = r.results.find((m) => m.scenario === s && m.target === 'new')
      const pairs = o.rounds.map((x, i) => n.rounds[i].cpuUs / x.cpuUs)
      by[s] ??= { old: [], new: [], oldRps: [], newRps: [], pairs: [] }
      by[s].old.push(...o.rounds.map((x) => x.cpuUs)); by[s].new.push(...n.rounds.map((x) => x.cpuUs))
      by[s].oldRps.push(...o.rounds.map((x) => x.rps)); by[s].newRps.push(...n.rounds.map((x) => x.rps)); by[s].pairs.push(...pairs)
      out.push(`| ${name} (${r.info.date.slice(11, 16)}) | ${r.rounds} × ${r.seconds} | ${r.info.loadavgStart.split(' ')[0]} → ${r.info.loadavgEnd.split(' ')[0]} | ${s} | ${o.rps.toFixed(0)} | ${n.rps.toFixed(0)} | ${o.cpuUs.toFixed(1)} | ${n.cpuUs.toFixed(1)} | ${(n.cpuUs / o.cpuUs).toFixed(3)} | ${med(pairs).toFixed(3)} |`)
    }
  }
  out.push('')
  for (const [s, v] of Object.entries(by)) pooled.push(`| ${label} | ${s} | ${v.old.length} | ${med(v.oldRps).toFixed(0)} | ${med(v.newRps).toFixed(0)} | ${med(v.old).toFixed(1)} | ${med(v.new).toFixed(1)} | ${(med(v.new) / med(v.old)).toFixed(3)} | ${med(v.pairs).toFixed(3)} (${boot(v.pairs)}) | ${v.pairs.filter((x) => x > 1.1).length}/${v.pairs.length} |`)
}
console.log(['| Node | scenario | rounds | old req/s | new req/s | old CPU µs/req | new CPU µs/req | new/old (medians) | new/old, median of round pairs (90 % bootstrap interval) | round pairs above 1.10 |', '|---|---|---:|---:|---:|---:|---:|---:|---|---|', ...pooled].join('\n'))
console.log('\n' + out.join('\n'))
const raw = ['| run | scenario | target | rounds in the order run: req/s / CPU µs/req |', '|---|---|---|---|']
for (const files of Object.values(groups)) {
  for (const f of files) {
    const r = JSON.parse(readFileSync(f, 'utf8'))
    for (const m of r.results) raw.push(`| ${f.split('/').pop().replace('.json', '')} | ${m.scenario} | ${m.target} | ${m.rounds.map((x) => `${x.rps.toFixed(0)} / ${x.cpuUs.toFixed(1)}`).join('; ')} |`)
  }
}
console.log('\n<details><summary>Raw rounds</summary>\n\n' + raw.join('\n') + '\n\n</details>')
