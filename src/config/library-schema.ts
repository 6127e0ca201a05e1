// The configuration of corsgate inside someone else's Fastify app (`corsgate/fastify`,
// `corsgate/fastify-cors`): the standalone file's schema, with routes optional and without
// upstreams, since the app forwards (or answers) itself. Routes only choose the policy.
import { z } from 'zod'
import { configSchema, routeSchema, type Config } from './schema.js'

const libraryRouteSchema = routeSchema.extend({
  // Accepted, so a standalone config file can be shared with the app; unused here.
  upstream: z.string().optional(),
  upstreams: z.array(z.string()).optional()
})

export const libraryConfigSchema = z.strictObject({
  ...configSchema.shape,
  // Without routes every request is judged by the `default` policy.
  routes: z.array(libraryRouteSchema).default([]),
  // The app registers its own plugins; a `plugins:` list here would do nothing.
  plugins: z.array(z.unknown()).max(0, 'register plugins on your own Fastify app; "plugins" only applies to the standalone gateway').default([])
}).superRefine((config, ctx) => {
  config.routes.forEach((route, i) => {
    if (!(route.policy in config.policies)) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'policy'], message: `names policy "${route.policy}", which is not defined under policies` })
    }
  })
}) as unknown as z.ZodType<Config>
