// CVE-2026-58044 hits HTTP proxies on Node lines without its fix. Node 20 is end-of-life and
// will never get one; production belongs on 22.23.2+ or 24.18.1+ (docs/getting-started.md "Node versions").
const FIXED: Record<number, [number, number]> = { 22: [23, 2], 24: [18, 1] }

/** A warning to log at start, or undefined when this Node line has the fix. */
export function nodeSupportWarning (version: string = process.versions.node): string | undefined {
  const [major = 0, minor = 0, patch = 0] = version.split('.').map(Number)
  if (major >= 25) return undefined
  const fixed = FIXED[major]
  const ok = fixed !== undefined && (minor > fixed[0] || (minor === fixed[0] && patch >= fixed[1]))
  if (ok) return undefined
  return `Node ${version} has no fix for CVE-2026-58044 (HTTP proxy request handling)${major === 20 ? ' and is end-of-life' : ''}: run production on Node 22.23.2+ or 24.18.1+`
}
