// Real Chromium for the browser end-to-end suite: Debian's /usr/bin/chromium driven by
// playwright-core, a fresh profile per run, and small page servers on loopback origins.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import t from 'tap'
import { WebSocketServer } from 'ws'
import { startTestGateway, type TestGateway } from './gateway.js'
import { startSocketIoUpstream, type SocketIoUpstream } from './socketio-upstream.js'
import { deadPort, startUpstream, type Upstream } from './upstream.js'

export const CHROMIUM = process.env.CORSGATE_CHROMIUM ?? '/usr/bin/chromium'

// DEVELOPERS.md: headless, no sandbox (containers), and nothing that talks to the network
// on its own (component updates, sync, QUIC), so every request the tests see is theirs.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync']

/**
 * Why the browser suite cannot run here, or undefined when it can. Chromium missing is a
 * skip unless CORSGATE_REQUIRE_CHROMIUM=1 (CI), where it is a failure; a Chromium that is
 * there but fails to start always fails (see `launchChromium`).
 */
export function chromiumUnavailable (): { skip: string } | { fail: string } | undefined {
  if (existsSync(CHROMIUM)) return undefined
  const reason = `Chromium not found at ${CHROMIUM} (apt-get install chromium)`
  return process.env.CORSGATE_REQUIRE_CHROMIUM === '1' ? { fail: `${reason}; CORSGATE_REQUIRE_CHROMIUM=1` } : { skip: reason }
}

/**
 * The gate every browser test file opens with: true when Chromium is there; otherwise the file
 * is planned as skipped (plain message) or, with CORSGATE_REQUIRE_CHROMIUM=1, fails.
 */
export function chromiumReady (): boolean {
  const unavailable = chromiumUnavailable()
  if (unavailable === undefined) return true
  if ('skip' in unavailable) t.plan(0, unavailable.skip)
  else t.fail(unavailable.fail)
  return false
}

export interface RunningBrowser {
  context: BrowserContext
  close: () => Promise<void>
}

/** Starts Chromium with a fresh user data dir (the given context options, and `args` added to the launch flags). Throws with Chromium's own reason if it cannot. */
export async function launchChromium (options: { httpCredentials?: { username: string, password: string }, viewport?: { width: number, height: number }, args?: readonly string[] } = {}): Promise<RunningBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'corsgate-chromium-'))
  let context: BrowserContext
  const { args = [], ...contextOptions } = options
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: [...ARGS, ...args], timeout: 30_000, ...contextOptions })
  } catch (err) {
    rmSync(profile, { recursive: true, force: true })
    throw new Error(`Chromium at ${CHROMIUM} could not start: ${(err as Error).message}`)
  }
  return {
    context,
    close: async () => {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }
}

export interface PageServer {
  /** The page's origin as the browser will see it, e.g. `http://localhost:41234`. */
  origin: string
  server: Server
  close: () => Promise<void>
}

const SOCKET_IO_CLIENT = (): string => readFileSync(join(process.cwd(), 'node_modules/socket.io-client/dist/socket.io.min.js'), 'utf8')

/**
 * Serves an empty HTML page at `/` and the socket.io-client browser bundle at
 * `/socket.io.min.js`, on 127.0.0.1, addressed by the browser as `http://{hostname}:{port}`.
 * `localhost` and `127.0.0.1` are different origins (and `localhost` a different site).
 */
export async function startPageServer (hostname: '127.0.0.1' | 'localhost'): Promise<PageServer> {
  let bundle: string | undefined
  const server = createServer((req, res) => {
    if (req.url === '/socket.io.min.js') {
      bundle ??= SOCKET_IO_CLIENT()
      res.setHeader('content-type', 'text/javascript')
      return res.end(bundle)
    }
    res.setHeader('content-type', 'text/html; charset=utf-8')
    res.end('<!doctype html><meta charset="utf-8"><title>corsgate browser test</title><script src="/socket.io.min.js"></script>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    origin: `http://${hostname}:${port}`,
    server,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** A page's fetch as script sees it: a response, or the error fetch rejected with. */
export type PageFetch = { status: number, body: string, headers: Record<string, string | null> } | { error: string }

/**
 * Browser-side source of `pageFetch(url, init, readHeaders)`: runs fetch and reports what
 * script can see. Passed as a string: page.evaluate would otherwise receive code that tsx
 * compiled for Node.
 */
export const PAGE_FETCH = `async function pageFetch (url, init, readHeaders) {
  try {
    const res = await fetch(url, init)
    const headers = {}
    for (const name of readHeaders || []) headers[name] = res.headers.get(name)
    return { status: res.status, body: await res.text(), headers }
  } catch (err) {
    return { error: String(err) }
  }
}`

// ---- the suite's world -----------------------------------------------------------------------
// A real upstream, a websocket echo upstream, a Socket.IO upstream, corsgate in front of them
// on its own origin, and two page origins: one the policy allows (http://127.0.0.1:P1), one it
// refuses (http://localhost:P2).

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

export interface ScenarioOptions {
  /**
   * corsgate on https (HTTP/2 by ALPN) with this certificate; Chromium trusts it by the base64
   * SHA-256 of its public key (`--ignore-certificate-errors-spki-list`).
   */
  tls?: { certFile: string, keyFile: string, spki: string }
}

export async function startScenario (options: ScenarioOptions = {}): Promise<Scenario> {
  const upstream = await startUpstream((req, res, body) => {
    const url = req.url ?? ''
    if (url.startsWith('/api/login')) res.setHeader('set-cookie', 'sid=s3cret; Path=/; SameSite=Lax; HttpOnly')
    res.setHeader('x-exposed', 'visible')
    res.setHeader('x-hidden', 'secret')
    // Lets the page read the protocol of the answer from its resource timing (nextHopProtocol).
    res.setHeader('timing-allow-origin', '*')
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
    ...(options.tls === undefined ? {} : { server: { tls: { certFile: options.tls.certFile, keyFile: options.tls.keyFile } } }),
    routes: [
      { path: '/api/', upstream: upstream.url },
      { path: '/dead/', upstream: `http://127.0.0.1:${dead}` },
      { path: '/ws/', upstream: wsUrl, websocket: true },
      { path: '/socket.io/', upstream: socketIo.url, websocket: true }
    ]
  })

  let browser: RunningBrowser
  try {
    browser = await launchChromium(options.tls === undefined ? {} : { args: [`--ignore-certificate-errors-spki-list=${options.tls.spki}`] })
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

export type WsResult = { opened: true, message: string } | { opened: false, code: number }

/** Opens a websocket from the page, sends `ping`, and reports the first message or the close code. Passed as a string so no compiled helper reaches the page. */
export async function websocketIn (page: Page, url: string): Promise<WsResult> {
  return await page.evaluate(`new Promise((resolve) => {
    const ws = new WebSocket(${JSON.stringify(url)})
    let opened = false
    ws.onopen = () => { opened = true; ws.send('ping') }
    ws.onmessage = (e) => { resolve({ opened: true, message: String(e.data) }); ws.close() }
    ws.onclose = (e) => { if (!opened) resolve({ opened: false, code: e.code }) }
  })`) as WsResult
}
