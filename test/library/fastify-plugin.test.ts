// corsgate's plugin in an existing Fastify gateway (@fastify/http-proxy to a real upstream,
// websockets on): the standalone gateway's behaviour table, passed the same way.
import t from 'tap'
import { runBehaviourTable } from '../helpers/behaviour-table.js'
import { startEmbeddedGateway } from '../helpers/embedded-gateway.js'

runBehaviourTable(t, {
  name: 'plugin in Fastify + @fastify/http-proxy',
  start: async ({ policies, routes, upstream }) => {
    const gw = await startEmbeddedGateway({ config: { policies, ...(routes === undefined ? {} : { routes }) }, upstream })
    return { url: gw.url, close: gw.close }
  }
})
