// Websockets and Socket.IO (long-polling and websocket transports) in a real page. Browsers
// apply no CORS to websockets: corsgate's check on the upgrade is the only defence against
// cross-site websocket hijacking, so the refused origin must not get a connection at all.
import t from 'tap'
import type { Page } from 'playwright-core'
import { chromiumReady, startScenario, websocketIn } from '../helpers/browser.js'

type IoResult = { connected: true, echo: unknown, whoami: { cookie: string | null, origin: string | null }, transport: string } | { connected: false, error: string }

async function socketIoIn (page: Page, gw: string, transport: 'polling' | 'websocket'): Promise<IoResult> {
  return await page.evaluate(`new Promise((resolve) => {
    const socket = io(${JSON.stringify(gw)}, { transports: [${JSON.stringify(transport)}], withCredentials: true, reconnection: false, timeout: 10000 })
    socket.on('connect_error', (err) => { resolve({ connected: false, error: String(err && err.message) }); socket.close() })
    socket.on('connect', () => {
      socket.emit('echo', { hello: 'from the page' }, (echo) => {
        socket.emit('whoami', (whoami) => {
          resolve({ connected: true, echo, whoami, transport: socket.io.engine.transport.name })
          socket.close()
        })
      })
    })
  })`) as IoResult
}

if (chromiumReady()) {
  t.test('websockets and Socket.IO in the page', async (t) => {
    const s = await startScenario()
    t.teardown(s.close)
    const wsGw = s.gw.url.replace(/^http/, 'ws')
    const allowed = await s.openPage(s.allowed)
    const refused = await s.openPage(s.refused)
    // A session cookie set through the gateway, to see it ride along on the upgrade.
    await s.fetchIn(allowed, `${s.gw.url}/api/login`, { credentials: 'include' })

    t.test('a websocket from the allowed origin opens and echoes, with the cookie', async (t) => {
      const res = await websocketIn(allowed, `${wsGw}/ws/echo`)
      t.same(res, { opened: true, message: 'echo:ping cookie:sid=s3cret' })
    })

    t.test('a websocket from the refused origin never opens', async (t) => {
      const upgradesBefore = s.gw.logs.filter((l) => l.kind === 'websocket' && l.decision === 'denied').length
      const res = await websocketIn(refused, `${wsGw}/ws/echo`)
      t.same(res, { opened: false, code: 1006 }, 'the handshake failed (403)')
      t.ok(s.gw.logs.filter((l) => l.kind === 'websocket' && l.decision === 'denied').length > upgradesBefore, 'corsgate denied the upgrade')
    })

    for (const transport of ['polling', 'websocket'] as const) {
      t.test(`Socket.IO over ${transport} from the allowed origin`, async (t) => {
        const res = await socketIoIn(allowed, s.gw.url, transport)
        if (!res.connected) return t.fail(`connect_error: ${res.error}`)
        t.equal(res.transport, transport)
        t.same(res.echo, { hello: 'from the page' })
        t.equal(res.whoami.origin, s.allowed.origin, 'the upstream saw the page\'s Origin')
        t.match(res.whoami.cookie, /sid=s3cret/, 'and its cookie (withCredentials)')
      })

      t.test(`Socket.IO over ${transport} from the refused origin`, async (t) => {
        const before = s.socketIo.connections
        const res = await socketIoIn(refused, s.gw.url, transport)
        t.equal(res.connected, false, 'connect_error in the page')
        t.equal(s.socketIo.connections, before, 'no Socket.IO connection reached the upstream')
      })
    }
  })
}
