// A plugin's answer is readable by the page: @fastify/rate-limit's 429 reaches script with its
// body and Retry-After instead of a CORS error, and the browser's preflights do not use up the
// limit (corsgate answers them before any plugin).
import t from 'tap'
import { chromiumReady, launchChromium, PAGE_FETCH, startPageServer, type PageFetch } from '../helpers/browser.js'
import { startTestGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

if (chromiumReady()) {
  t.test('a rate-limited page reads the 429', async (t) => {
    const upstream = await startUpstream()
    const page = await startPageServer('127.0.0.1')
    const gw = await startTestGateway({
      policies: { default: { origins: [page.origin], allowHeaders: ['Content-Type'], exposeHeaders: ['Retry-After'] } },
      plugins: [{ name: '@fastify/rate-limit', options: { max: 2, timeWindow: 60_000 }, routes: ['/api/'] }],
      routes: [{ path: '/api/', upstream: upstream.url }]
    })
    const browser = await launchChromium()
    t.teardown(async () => { await browser.close(); await gw.close(); await page.close(); await upstream.close() })
    const tab = await browser.context.newPage()
    await tab.goto(`${page.origin}/`)
    await tab.evaluate(`window.pageFetch = ${PAGE_FETCH}`)
    const put = async (n: number): Promise<PageFetch> => await tab.evaluate(`pageFetch(${JSON.stringify(`${gw.url}/api/items/${n}`)}, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{}' }, ['retry-after'])`) as PageFetch

    const results = [await put(1), await put(2), await put(3)]
    const statuses = results.map((r) => 'error' in r ? r.error : r.status)
    t.same(statuses, [200, 200, 429], 'two PUTs served, the third refused by the plugin and readable by script')
    const limited = results[2]!
    if (!('error' in limited)) {
      t.match(JSON.parse(limited.body), { statusCode: 429 }, 'the page reads the plugin\'s body')
      t.ok(limited.headers['retry-after'] !== null, 'and the exposed Retry-After')
    }
    const preflights = gw.logs.filter((l) => l.kind === 'preflight' && l.msg === 'request').length
    t.ok(preflights >= 1, `the browser preflighted the PUTs (${preflights}) and corsgate answered`)
    t.equal(upstream.seen.length, 2, 'the refused PUT never reached the upstream')
  })
}
