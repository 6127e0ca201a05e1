// The user's Fastify plugins (SPEC "Plugins"): loaded from the config's `plugins:` section or
// handed over by code, and registered so that their hooks apply to the routes they are scoped
// to — all routes when `routes` is omitted — whether or not the plugin is wrapped with
// fastify-plugin. corsgate's own hooks are registered before any of them.
import { createRequire } from 'node:module'
import { dirname, isAbsolute, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyInstance, FastifyPluginAsync, FastifyPluginCallback } from 'fastify'
import { ConfigError } from '../config/load.js'
import type { Config } from '../config/schema.js'
import type { IncomingMessage } from 'node:http'
import type { Route } from './route-table.js'

type PluginFunction = FastifyPluginCallback<Record<string, unknown>> | FastifyPluginAsync<Record<string, unknown>>

export interface GatewayPlugin {
  /** The package name or file path, for messages. */
  name: string
  plugin: PluginFunction
  options?: Record<string, unknown>
  /** Route paths (or `host/path` labels) the plugin applies to; every route when undefined. */
  routes?: readonly string[]
}

/** A plugin that could not be loaded or registered: the start stops with exit 2, naming it. */
export class PluginError extends ConfigError {
  constructor (file: string, name: string, cause: unknown) {
    super(file, [`plugin ${name}: ${(cause as Error)?.message ?? String(cause)}`])
  }
}

/**
 * Loads the config's plugins. A `name` resolves as an import would from the config file's
 * folder, then from corsgate's own install (so a derived image can `npm install` plugins next
 * to it); a `path` is a file relative to the config file.
 */
export async function loadPlugins (config: Config, file: string): Promise<GatewayPlugin[]> {
  const base = dirname(resolve(file))
  const out: GatewayPlugin[] = []
  for (const [i, entry] of (config.plugins ?? []).entries()) {
    const name = entry.name ?? entry.path!
    const label = `plugins[${i}] (${name})`
    let mod: unknown
    try {
      const url = entry.path !== undefined ? pathToFileURL(isAbsolute(entry.path) ? entry.path : resolve(base, entry.path)).href : resolvePackage(entry.name!, base)
      mod = await import(url)
    } catch (err) {
      throw new PluginError(file, label, new Error(`cannot be loaded: ${(err as Error).message.split('\n')[0]!}`))
    }
    const plugin = pluginFunction(mod)
    if (plugin === undefined) throw new PluginError(file, label, new Error('does not export a Fastify plugin function'))
    out.push({ name: label, plugin, options: entry.options, ...(entry.routes === undefined ? {} : { routes: entry.routes }) })
  }
  return out
}

function resolvePackage (name: string, base: string): string {
  for (const from of [resolve(base, 'noop.js'), import.meta.filename ?? new URL(import.meta.url).pathname]) {
    try {
      return pathToFileURL(createRequire(from).resolve(name)).href
    } catch {}
  }
  throw new Error(`package "${name}" not found from ${base} or from corsgate's own install`)
}

function pluginFunction (mod: unknown): PluginFunction | undefined {
  const m = mod as { default?: unknown }
  // ESM default export, or CommonJS `module.exports` under `default`.
  const fn = typeof m?.default === 'function' ? m.default : mod
  return typeof fn === 'function' ? fn as PluginFunction : undefined
}

const SKIP_OVERRIDE = Symbol.for('skip-override')
const DISPLAY_NAME = Symbol.for('fastify.display-name')
const PLUGIN_META = Symbol.for('plugin-meta')

/**
 * The plugin as one that does not open a scope of its own (what fastify-plugin does), so its
 * hooks land in the scope it is registered in — the one holding the routes it is meant for.
 * A copy: the user's function is left as it was.
 */
function unencapsulated (p: GatewayPlugin): PluginFunction {
  const plugin = p.plugin as (...args: unknown[]) => unknown
  const wrapped = plugin.length >= 3
    ? function (this: unknown, instance: unknown, opts: unknown, done: unknown) { return plugin.call(this, instance, opts, done) }
    : function (this: unknown, instance: unknown, opts: unknown) { return plugin.call(this, instance, opts) }
  const meta = (plugin as unknown as Record<symbol, unknown>)[PLUGIN_META]
  Object.assign(wrapped, { [SKIP_OVERRIDE]: true, [DISPLAY_NAME]: p.name, ...(meta === undefined ? {} : { [PLUGIN_META]: meta }) })
  return wrapped as unknown as PluginFunction
}

async function registerOne (scope: FastifyInstance, p: GatewayPlugin, file: string): Promise<void> {
  try {
    await scope.register(unencapsulated(p), p.options ?? {})
  } catch (err) {
    throw new PluginError(file, p.name, err)
  }
}

/** Declares the catch-all routes for `routes` in `scope`; `constraint` tells scoped routes apart. */
export type DeclareRoutes = (scope: FastifyInstance, routes: readonly Route[], constraint: string | undefined) => void

/**
 * Registers the plugins and declares the public routes around them: plugins for every route on
 * the instance itself, next to the routes no scoped plugin applies to; each set of routes
 * sharing the same scoped plugins in a scope of its own, told apart by a router constraint that
 * asks corsgate's route table (never Fastify's path matching, which differs from it). Returns
 * the routes that have scoped plugins.
 */
export async function registerPlugins (app: FastifyInstance, plugins: readonly GatewayPlugin[], routes: readonly Route[], declare: DeclareRoutes, routeOf: (req: IncomingMessage) => Route | undefined, file = 'config'): Promise<Set<Route>> {
  for (const p of plugins) {
    if (p.routes === undefined) await registerOne(app, p, file)
  }
  const groups = new Map<string, { plugins: GatewayPlugin[], routes: Route[] }>()
  const groupOf = new Map<Route, string>()
  for (const route of routes) {
    const own = plugins.filter((p) => p.routes?.some((r) => r === route.path || r === route.label) === true)
    if (own.length === 0) continue
    const key = own.map((p) => plugins.indexOf(p)).join(',')
    const group = groups.get(key) ?? { plugins: own, routes: [] }
    group.routes.push(route)
    groups.set(key, group)
    groupOf.set(route, key)
  }
  for (const p of plugins) {
    const unknown = p.routes?.filter((r) => !routes.some((route) => r === route.path || r === route.label)) ?? []
    if (unknown.length > 0) throw new PluginError(file, p.name, new Error(`routes ${unknown.join(', ')} name no configured route`))
  }
  if (groups.size > 0) {
    app.addConstraintStrategy({
      name: 'corsgateRoute',
      storage () {
        const handlers = new Map<string, unknown>()
        return { get: (key: string) => handlers.get(key) ?? null, set: (key: string, value: unknown) => { handlers.set(key, value) } }
      },
      deriveConstraint: (req: IncomingMessage) => { const r = routeOf(req); return r === undefined ? undefined : groupOf.get(r) },
      mustMatchWhenDerived: false
    } as unknown as Parameters<FastifyInstance['addConstraintStrategy']>[0])
  }
  declare(app, routes.filter((r) => !groupOf.has(r)), undefined)
  for (const [key, group] of groups) {
    await app.register(async function corsgateScopedRoutes (scope) {
      for (const p of group.plugins) await registerOne(scope, p, file)
      declare(scope, group.routes, key)
    })
  }
  return new Set(groupOf.keys())
}
