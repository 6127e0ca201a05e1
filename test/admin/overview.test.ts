// `/overview` and `/decisions`, the JSON the admin page reads, and the ring of recent decisions
// behind `/decisions`.
import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import { DecisionLog } from '../../src/gateway/decision-log.js'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { waitFor } from '../helpers/redis-gateway.js'
import { deadPort, startUpstream } from '../helpers/upstream.js'
import { startWsEcho } from '../helpers/ws-upstream.js'

const entry = (path: string): Omit<Parameters<DecisionLog['record']>[0], never> => ({
  at: 0, route: '/', policy: 'default', kind: 'actual', method: 'GET', path, origin: null, outcome: 'no_origin', reason: 'no_origin', rule: null, detail: null, status: 200, durationMs: 1
})

t.test('DecisionLog: a bounded ring, read after a sequence number', async (t) => {
  const log = new DecisionLog(3)
  t.same(log.since(0), [])
  t.equal(log.last, 0)
  for (let i = 1; i <= 5; i++) log.record(entry(`/${i}`))
  t.equal(log.last, 5)
  t.same(log.since(0).map((r) => r.path), ['/3', '/4', '/5'], 'only the last `capacity` are kept, oldest first')
  t.same(log.since(3).map((r) => r.seq), [4, 5], 'after a seq: only newer ones')
  t.same(log.since(5), [], 'nothing newer')
  t.same(log.since(0, 1).map((r) => r.path), ['/5'], 'a limit keeps the newest')
  t.same(log.since(99), [], 'a seq from the future (another process): nothing')
  log.record({ ...entry('/'.repeat(5000)), origin: 'x'.repeat(5000) })
  const [long] = log.since(5)
  t.ok(long!.origin!.length < 600 && long!.path.length < 600, 'long origins and paths are clipped')
})

t.test('/overview and /decisions', async (t) => {
  const upstream = await startUpstream()
  const ws = await startWsEcho()
  const dead = await deadPort()
  const gw = await startTestGateway({
    policies: { default: { origins: ['https://app.example.com', 'https://*.example.com'], deny: ['https://old.example.com'] }, open: { origins: ['*'], credentials: false, mode: 'report-only' } },
    routes: [
      { path: '/api/', upstreams: [`http://127.0.0.1:${dead}`, upstream.url], ejectionMs: 600_000 },
      { path: '/ws/', upstream: ws.url, websocket: true, policy: 'open' }
    ]
  }, { CORSGATE_ORIGINS: 'https://env.example.com' })
  t.teardown(async () => { await gw.close(); await upstream.close(); await ws.close() })

  const first = (await send(`${gw.adminUrl}/overview`)).json() as Record<string, any>
  t.same(first.readiness, { ready: true, closing: false, reasons: [] })
  t.same(first.policies.find((p: any) => p.name === 'default'), { name: 'default', mode: 'enforce', allow: { file: 2, env: 1, redis: 0, expiring: 0 }, deny: { file: 1, redis: 0 }, expired: 0 })
  t.match(first.policies.find((p: any) => p.name === 'open'), { mode: 'report-only', allow: { file: 1 } })
  t.match(first.reloads.file, { result: 'ok', at: String, errors: 0, lastOkAt: String })
  t.equal(first.redis, null, 'no Redis configured')
  t.same(first.routes[0].upstreams.map((u: any) => u.ejected), [false, false], 'both upstreams in rotation at first')

  // A refused connection takes the dead upstream out of rotation.
  for (let i = 0; i < 2; i++) await send(`${gw.url}/api/x`, { headers: { origin: 'https://app.example.com' } })
  const afterRefusal = (await send(`${gw.adminUrl}/overview`)).json() as Record<string, any>
  t.same(afterRefusal.routes[0].upstreams, [{ url: `http://127.0.0.1:${dead}`, ejected: true, concurrencyLimit: 128, connections: 128 }, { url: upstream.url, ejected: false, concurrencyLimit: 128, connections: 128 }], 'the dead one is ejected')

  const socket = new WebSocket(`${gw.url.replace('http', 'ws')}/ws/echo`, { headers: { origin: 'https://anything.example.org' } })
  await once(socket, 'open')
  const withSocket = (await send(`${gw.adminUrl}/overview`)).json() as Record<string, any>
  t.equal(withSocket.openWebsockets, 1)
  t.equal(withSocket.routes.find((r: any) => r.route === '/ws/').openWebsockets, 1)
  socket.close()
  await waitFor(async () => ((await send(`${gw.adminUrl}/overview`)).json() as Record<string, any>).openWebsockets === 0, 5000, 'the websocket to be counted closed')

  await send(`${gw.url}/api/denied`, { headers: { origin: 'https://old.example.com' } })
  const all = (await send(`${gw.adminUrl}/decisions`)).json() as { last: number, capacity: number, decisions: Array<Record<string, any>> }
  t.equal(all.capacity, 500)
  t.equal(all.last, all.decisions.at(-1)?.seq, 'last is the newest seq')
  t.match(all.decisions.at(-1), { route: '/api/', policy: 'default', kind: 'actual', method: 'GET', path: '/api/denied', origin: 'https://old.example.com', outcome: 'denied', reason: 'denylisted', rule: 'https://old.example.com', status: 403, at: /^\d{4}-\d\d-\d\dT/ })
  t.ok(all.decisions.some((d) => d.kind === 'websocket' && d.route === '/ws/'), 'websocket upgrades are there too')
  const newer = (await send(`${gw.adminUrl}/decisions?after=${all.last - 1}`)).json() as { decisions: Array<{ seq: number }> }
  t.same(newer.decisions.map((d) => d.seq), [all.last], 'after= gives only what came later')
  const bad = (await send(`${gw.adminUrl}/decisions?after=junk&limit=-1`)).json() as { decisions: unknown[] }
  t.equal(bad.decisions.length, all.decisions.length, 'unreadable numbers: everything kept')
})
