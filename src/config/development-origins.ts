// The shipped config/default.yaml allows `http://localhost:*` and `http://127.0.0.1:*` with
// credentials, for development. Under NODE_ENV=production (the Docker image sets it), such
// loopback origins still in force are almost always the embedded default shipped by mistake:
// any page a developer serves on their own machine could then call the production API with
// the user's cookies. They are reported loudly (a warning at start and by `validate`),
// unless CORSGATE_ALLOW_DEV_ORIGINS=true says they are meant.
import { OriginPatternError, parseOriginPattern } from '../policy/origin-pattern.js'
import type { Config } from './schema.js'

type Env = Record<string, string | undefined>

const LOOPBACK = /^(localhost|.*\.localhost|127(\.[0-9]{1,3}){3}|\[::1\])$/

/** Is this pattern an origin on the local machine (localhost, 127.0.0.0/8, [::1])? */
export function isLoopbackPattern (text: string): boolean {
  let pattern
  try {
    pattern = parseOriginPattern(text)
  } catch (err) {
    if (err instanceof OriginPatternError) return false
    throw err
  }
  if (pattern.kind === 'any-port') return LOOPBACK.test(pattern.host)
  if (pattern.kind === 'exact') {
    const host = pattern.origin.replace(/^[a-z]+:\/\//, '').replace(/:[0-9]+$/, '')
    return LOOPBACK.test(host)
  }
  if (pattern.kind === 'subdomain') return pattern.suffix === 'localhost'
  return false
}

/** Warnings for loopback origins in force while NODE_ENV=production. */
export function developmentOriginWarnings (config: Config, env: Env): string[] {
  if (env.NODE_ENV !== 'production' || env.CORSGATE_ALLOW_DEV_ORIGINS === 'true') return []
  const out: string[] = []
  for (const [name, policy] of Object.entries(config.policies)) {
    const found = policy.origins.filter(isLoopbackPattern)
    if (found.length === 0) continue
    out.push(`policies.${name}.origins: NODE_ENV=production, but development origins are allowed (${found.join(', ')})${policy.credentials ? ' with credentials' : ''}: ` +
      'any page served on a visitor\'s own machine may call this API. ' +
      (name === 'default' ? 'Set CORSGATE_ORIGINS_MODE=replace with CORSGATE_ORIGINS to replace them, or mount a config of your own; ' : 'Remove them from the config; ') +
      'set CORSGATE_ALLOW_DEV_ORIGINS=true if they are meant')
  }
  return out
}
