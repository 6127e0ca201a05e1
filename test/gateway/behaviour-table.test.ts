// The shared behaviour table (test/helpers/behaviour-table.ts) against the standalone gateway.
import t from 'tap'
import { runBehaviourTable } from '../helpers/behaviour-table.js'
import { startTestGateway } from '../helpers/gateway.js'

runBehaviourTable(t, {
  name: 'standalone gateway',
  start: async ({ policies, routes, upstream }) => {
    const gw = await startTestGateway({
      policies,
      routes: (routes ?? [{ path: '/' }]).map((r) => ({ ...r, upstream }))
    })
    return { url: gw.url, close: gw.close }
  }
})
