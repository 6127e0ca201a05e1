// The browser suite's world: a real upstream, a websocket echo upstream, a Socket.IO
// upstream, corsgate in front of them on its own origin, and two page origins — one the
// policy allows (http://127.0.0.1:P1), one it refuses (http://localhost:P2).
import type { AddressInfo } from 'node:net'
import { createServer } from 'node:http'
import type { Page } from 'playwright-core'
import { WebSocketServer } from 'ws'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { launchChromium, PAGE_FETCH, startPageServer, type PageFetch, type PageServer, type RunningBrowser } from '../helpers/browser.js'
import { startSocketIoUpstream, type SocketIoUpstream } from '../helpers/socketio-upstream.js'
import { deadPort, startUpstream, type Upstream } from '../helpers/upstream.js'

export interface Scenario {
  gw: TestGateway
  upstream: Upstream
  socketIo: SocketIoUpstream
  wsUrl: string
  allowed: PageServer
  refused: PageServer
  browser: RunningBrowser
  /** A page loaded from `server`'s origin, with `pageFetch` defined. */
  openPage: (server: PageServer) => Promise<Page>
  /** Runs `pageFetch(url, init, readHeaders)` in the page. */
  fetchIn: (page: Page, url: string, init?: Record<string, unknown>, readHeaders?: string[]) => Promise<PageFetch>
  /** Preflights the gateway answered for `path`, from its request log. */
  preflights: (path: string) => number
  close: () => Promise<void>
}

export async function startScenario (): Promise<Scenario> {
  const upstream = await startUpstream((req, res, body) => {
    const url = req.url ?? ''
    if (url.startsWith('/api/login')) res.setHeader('set-cookie', 'sid=s3cret; Path=/; SameSite=Lax; HttpOnly')
    res.setHeader('x-exposed', 'visible')
    res.setHeader('x-hidden', 'secret')
    // An upstream that tries its own CORS: corsgate must replace it.
    res.setHeader('access-control-allow-origin', '*')
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ method: req.method, url, cookie: req.headers.cookie ?? null, authorization: req.headers.authorization ?? null, body: body.toString() }))
  })
  const socketIo = await startSocketIoUpstream('browser')
  const wsHttp = createServer((_req, res) => { res.statusCode = 426; res.end() })
  const wss = new WebSocketServer({ server: wsHttp })
  wss.on('connection', (ws, req) => {
    ws.on('message', (data) => ws.send(`echo:${data.toString()} cookie:${req.headers.cookie ?? ''}`))
  })
  await new Promise<void>((resolve) => wsHttp.listen(0, '127.0.0.1', resolve))
  const wsUrl = `http://127.0.0.1:${(wsHttp.address() as AddressInfo).port}`

  const allowed = await startPageServer('127.0.0.1')
  const refused = await startPageServer('localhost')
  const dead = await deadPort()
  const gw = await startTestGateway({
    policies: {
      default: {
        origins: [allowed.origin],
        credentials: true,
        allowHeaders: ['Content-Type', 'Authorization'],
        exposeHeaders: ['X-Exposed'],
        maxAge: 600
      }
    },
    routes: [
      { path: '/api/', upstream: upstream.url },
      { path: '/dead/', upstream: `http://127.0.0.1:${dead}` },
      { path: '/ws/', upstream: wsUrl, websocket: true },
      { path: '/socket.io/', upstream: socketIo.url, websocket: true }
    ]
  })

  let browser: RunningBrowser
  try {
    browser = await launchChromium()
  } catch (err) {
    await gw.close()
    await Promise.all([upstream.close(), socketIo.close(), allowed.close(), refused.close()])
    wss.close()
    await new Promise<void>((resolve) => wsHttp.close(() => resolve()))
    throw err
  }

  return {
    gw,
    upstream,
    socketIo,
    wsUrl,
    allowed,
    refused,
    browser,
    openPage: async (server) => {
      const page = await browser.context.newPage()
      await page.goto(`${server.origin}/`)
      await page.evaluate(`window.pageFetch = ${PAGE_FETCH}`)
      return page
    },
    fetchIn: async (page, url, init = {}, readHeaders = []) =>
      await page.evaluate(`pageFetch(${JSON.stringify(url)}, ${JSON.stringify(init)}, ${JSON.stringify(readHeaders)})`) as PageFetch,
    preflights: (path) => gw.logs.filter((l) => l.kind === 'preflight' && l.path === path).length,
    close: async () => {
      await browser.close()
      await gw.close()
      for (const c of wss.clients) c.terminate()
      wss.close()
      wsHttp.closeAllConnections()
      await new Promise<void>((resolve) => wsHttp.close(() => resolve()))
      await Promise.all([upstream.close(), socketIo.close(), allowed.close(), refused.close()])
    }
  }
}
