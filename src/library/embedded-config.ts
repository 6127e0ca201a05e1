// The config an app hands to `corsgate/fastify` or `corsgate/fastify-cors`: a file path, or the
// object the YAML file holds. Loaded and checked as `corsgate start` loads its file (YAML,
// schema, origin patterns, files it names), every problem named by its field.
import { readFileSync } from 'node:fs'
import { libraryConfigSchema } from '../config/library-schema.js'
import { referencedFileProblems } from '../config/files.js'
import { ConfigError, parseYaml, validateConfig, type LoadedConfig } from '../config/load.js'

/** A path to a YAML config file, or the object such a file holds. */
export type ConfigInput = string | Record<string, unknown>

export interface EmbeddedConfigOptions {
  config: ConfigInput
  /**
   * The `CORSGATE_*` variables to apply (docs/configuration.md). None by default: an app's
   * environment is its own; pass `process.env` to honour them.
   */
  env?: Record<string, string | undefined>
  /** True when the app chooses the policy per request, so no `default` policy is needed. */
  choosesPolicy?: boolean
}

const OBJECT = '(config object)'

export function loadEmbeddedConfig ({ config, env = {}, choosesPolicy = false }: EmbeddedConfigOptions): LoadedConfig {
  let loaded: LoadedConfig
  if (typeof config === 'string') {
    let text: string
    try {
      text = readFileSync(config, 'utf8')
    } catch (err) {
      throw new ConfigError(config, [`cannot read the file: ${(err as Error).message}`])
    }
    loaded = validateConfig(parseYaml(text, config), config, env, libraryConfigSchema)
  } else if (config !== null && typeof config === 'object' && !Array.isArray(config)) {
    loaded = validateConfig(config, OBJECT, env, libraryConfigSchema)
  } else {
    throw new ConfigError(OBJECT, ['config: must be a path to a YAML file or the object such a file holds'])
  }
  const problems = referencedFileProblems(loaded.config)
  // A request no route covers (and no policy function names a policy for) is judged by
  // `default`, never by another policy in its place; a route for `/` covers every request.
  const coversAll = loaded.config.routes.some((r) => r.path === '/' && r.host === undefined)
  if (!coversAll && !choosesPolicy && !('default' in loaded.config.policies)) {
    problems.push('policies: requests no route covers are judged by the "default" policy, which is not defined (define it, add a route for "/", or choose the policy with a function)')
  }
  if (problems.length > 0) throw new ConfigError(loaded.file, problems)
  return loaded
}
