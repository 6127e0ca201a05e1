// The whitelists of the benchmark: N https origins, one in ten a `*.` wildcard, the rest
// exact, so lookups exercise both the exact map and the label-suffix walk. The same list is
// given to corsgate (YAML), nginx (a hostnames map) and express (a Set plus regexes).

export interface Whitelist {
  exact: string[]
  wildcard: string[]
  /** Every entry in corsgate's grammar. */
  all: string[]
  /** Origins a browser would send that the list allows: half exact hits, half wildcard hits. */
  allowedProbes: string[]
  /** Origins the list denies. */
  deniedProbes: string[]
}

export function makeWhitelist (n: number, probes = 2): Whitelist {
  const exact: string[] = []
  const wildcard: string[] = []
  for (let i = 0; i < n; i++) {
    if (i % 10 === 0) wildcard.push(`https://*.tenant${i}.example.net`)
    else exact.push(`https://app${i}.customer${i}.example.com`)
  }
  const allowedProbes: string[] = []
  const deniedProbes: string[] = []
  for (let k = 0; k < probes; k++) {
    // Spread the hits over the list, not only its first entries.
    const e = exact[Math.floor(((k + 0.5) / probes) * exact.length)]!
    const w = wildcard[Math.floor(((k + 0.5) / probes) * wildcard.length)]!
    if (k % 2 === 0) allowedProbes.push(e, w.replace('*.', 'eu.api.'))
    else allowedProbes.push(w.replace('*.', 'web.'), e)
    deniedProbes.push(`https://evil${k}.attacker.example.org`)
  }
  return { exact, wildcard, all: [...exact, ...wildcard], allowedProbes, deniedProbes }
}

/** The same list as an nginx `map ... { hostnames; }` include file. */
export function nginxHostnamesMap (list: Whitelist): string {
  const lines: string[] = []
  for (const o of list.exact) lines.push(`${o.slice('https://'.length)} 1;`)
  for (const o of list.wildcard) lines.push(`${o.slice('https://'.length)} 1;`)
  return `${lines.join('\n')}\n`
}
