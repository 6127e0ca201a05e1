// `GET /observed` and `POST /diff` (SPEC.md "Observed origins"): which origins call each
// policy and how each is judged, and what a candidate policy would refuse of that traffic.
import type { FastifyInstance, FastifyReply } from 'fastify'
import { parseDuration } from '../config/duration.js'
import { formatPath } from '../config/load.js'
import { policySchema, type Config, type PolicyConfig } from '../config/schema.js'
import { fileEntries, parseEntries, type EntryError } from '../policy/compile.js'
import { buildSnapshot } from '../policy/snapshot.js'
import type { ObservedOrigins } from '../observe/observed-origins.js'
import { observedReport, parseOutcome, type ObservedCounts } from '../observe/observed-report.js'
import { diffPolicies } from '../observe/policy-diff.js'
import type { PolicyStore } from '../sources/policy-store.js'

export const DEFAULT_SINCE = '24h'

export interface ObservedRoutesOptions {
  config: Config
  store: PolicyStore
  observed: ObservedOrigins | undefined
}

function badRequest (reply: FastifyReply, message: string): { error: string, message: string } {
  reply.code(400)
  return { error: 'bad_request', message }
}

/** The window in ms, at most the retention (older buckets are gone anyway); an Error when unreadable. */
function sinceWindow (config: Config, text: string): number | Error {
  const ms = parseDuration(text)
  if (ms === undefined) return new Error(`since must be a duration with a unit (ms, s, m, h, d, w), e.g. 24h, got "${text}"`)
  return Math.min(ms, parseDuration(config.observe.retention)!)
}

export async function observedRoutes (app: FastifyInstance, opts: ObservedRoutesOptions): Promise<void> {
  const { config, store, observed } = opts

  app.get<{ Querystring: { policy?: string, since?: string, outcome?: string } }>('/observed', async (request, reply) => {
    if (observed === undefined) {
      reply.code(404)
      return { error: 'observe_disabled', message: 'observe.enabled is false in the configuration' }
    }
    const { policy, since = DEFAULT_SINCE } = request.query
    if (policy === undefined || policy === '') return badRequest(reply, 'policy is required, e.g. /observed?policy=default')
    if (!(policy in config.policies)) {
      reply.code(404)
      return { error: 'unknown_policy', message: `no policy named "${policy}"` }
    }
    const window = sinceWindow(config, since)
    if (window instanceof Error) return badRequest(reply, window.message)
    const outcome = parseOutcome(request.query.outcome)
    if (outcome instanceof Error) return badRequest(reply, outcome.message)
    const { counts, source } = await observed.counts(policy, window)
    reply.header('x-corsgate-observed-source', source)
    return observedReport(policy, since, counts, outcome)
  })

  // Body: `{ "policies": { "default": { …policy settings as in the config file… } }, "since": "24h" }`.
  // Policies not named keep their live settings; every policy keeps its live Redis entries.
  app.post<{ Body: unknown }>('/diff', async (request, reply) => {
    if (observed === undefined) {
      reply.code(404)
      return { error: 'observe_disabled', message: 'observe.enabled is false in the configuration' }
    }
    const body = request.body
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return badRequest(reply, 'expected a JSON object: { "policies": { NAME: { …policy… } }, "since": "24h" }')
    const { policies: raw, since = DEFAULT_SINCE, ...extra } = body as Record<string, unknown>
    if (Object.keys(extra).length > 0) return badRequest(reply, `unknown keys ${Object.keys(extra).map((k) => `"${k}"`).join(', ')}`)
    if (typeof since !== 'string') return badRequest(reply, 'since must be a string such as "24h"')
    const window = sinceWindow(config, since)
    if (window instanceof Error) return badRequest(reply, window.message)
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return badRequest(reply, 'policies must be an object of policy settings by name')

    const candidatePolicies: Record<string, PolicyConfig> = { ...config.policies }
    const problems: string[] = []
    for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
      const parsed = policySchema.safeParse(value)
      if (!parsed.success) {
        for (const issue of parsed.error.issues) problems.push(`policies.${name}${issue.path.length > 0 ? `.${formatPath(issue.path)}` : ''}: ${issue.message}`)
        continue
      }
      const errors: EntryError[] = []
      const entries = fileEntries(name, parsed.data)
      parseEntries(entries.allow, errors)
      parseEntries(entries.deny, errors)
      problems.push(...errors.map((e) => `${e.where}: ${e.message}`))
      candidatePolicies[name] = parsed.data
    }
    if (problems.length > 0) return badRequest(reply, problems.join('; '))

    const live = store.snapshot.policies
    const envOrigins = store.loaded.envOrigins
    const candidate = buildSnapshot({ config: { ...config, policies: candidatePolicies }, envOrigins, live: store.liveEntries, version: 0 }, []).policies
    const counts = new Map<string, ObservedCounts>()
    for (const name of new Set([...live.keys(), ...candidate.keys()])) counts.set(name, (await observed.counts(name, window)).counts)
    return diffPolicies(live, candidate, counts, since, Date.now())
  })
}
