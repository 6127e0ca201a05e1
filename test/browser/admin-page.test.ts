// The admin page in real Chromium: it loads with no console error under its own CSP, shows a
// request sent to the public port in the live view, shows a Redis edit in the overview, and
// renders attacker-controlled origins as inert text. Screenshots of the overview and the live
// view are written to .cache/screenshots/ (docs/admin-*.png are copies of them).
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import t from 'tap'
import { chromiumReady, launchChromium } from '../helpers/browser.js'
import { ROOT } from '../helpers/cli-process.js'
import { send } from '../helpers/http.js'
import { sendRaw } from '../helpers/raw-http.js'
import { startRedisGateway, uniquePrefix, waitForRedisLoaded } from '../helpers/redis-gateway.js'
import { startRedis } from '../helpers/redis-server.js'
import { deadPort, startUpstream } from '../helpers/upstream.js'

const SCREENSHOTS = join(ROOT, '.cache', 'screenshots')
// Generous: a loaded machine may be slow to paint; the page itself polls twice a second.
const WAIT = { timeout: 15_000 }

const XSS_ORIGINS = ['"><script>window.__pwned=1</script>', 'javascript:alert(1)', '<img src=x onerror="window.__pwned=2">']

async function openAdmin (page: Page, url: string, errors: string[]): Promise<void> {
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`) })
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`))
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()}: ${r.url()}`) })
  await page.goto(url)
}

if (chromiumReady()) {
  t.test('the admin page', async (t) => {
    const redis = await startRedis()
    const upstream = await startUpstream()
    const dead = await deadPort()
    const keyPrefix = uniquePrefix()
    const gw = await startRedisGateway(redis, {
      redisOptions: { keyPrefix },
      policies: {
        default: { origins: ['https://app.example.com', 'https://*.example.com'], deny: ['https://old.example.com'], allowHeaders: ['Content-Type'] },
        partners: { origins: ['https://partner.example.org'], mode: 'report-only' }
      },
      routes: [
        { path: '/api/', upstream: upstream.url },
        { path: '/partners/', upstream: upstream.url, policy: 'partners' },
        { path: '/ws/', upstreams: [upstream.url, `http://127.0.0.1:${dead}`], websocket: true }
      ]
    })
    const browser = await launchChromium({ viewport: { width: 1360, height: 860 } })
    t.teardown(async () => {
      await browser.close()
      await gw.close()
      await upstream.close()
      await redis.close()
    })
    await waitForRedisLoaded(gw)
    mkdirSync(SCREENSHOTS, { recursive: true })

    const errors: string[] = []
    const page = await browser.context.newPage()
    await openAdmin(page, `${gw.adminUrl}/`, errors)

    await t.test('CSP and nosniff on the page, its files and the JSON it reads', async (t) => {
      for (const path of ['/', '/page.js', '/page.css', '/overview', '/decisions', '/policies', '/explain?origin=x', '/metrics', '/healthz']) {
        const res = await send(`${gw.adminUrl}${path}`)
        t.equal(res.one('content-security-policy'), "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'", path)
        t.equal(res.one('x-content-type-options'), 'nosniff', path)
      }
      const html = (await send(`${gw.adminUrl}/`)).body
      t.notMatch(html, /<script>|<script [^>]*>[^<]|\son[a-z]+=|style=/i, 'no inline script, handler or style for the CSP to refuse')
      t.notMatch(html, /https?:\/\//, 'nothing fetched from another origin')
    })

    await t.test('overview: readiness, policies, routes', async (t) => {
      await page.waitForSelector('#policies tr[data-policy="default"]', WAIT)
      t.match(await page.textContent('#readiness'), /ready/)
      t.equal(await page.textContent('#policies tr[data-policy="default"] td[data-count="file"]'), '2')
      t.equal(await page.textContent('#policies tr[data-policy="default"] td[data-count="deny-file"]'), '1')
      t.match(await page.textContent('#policies tr[data-policy="partners"]'), /report-only/)
      t.match(await page.textContent('#routes'), /\/ws\/.*websocket/s)
      t.match(await page.textContent('#redis'), /connected/)
      t.match(await page.textContent('#reloads'), /redis/)
    })

    await t.test('a Redis edit shows in the overview entry counts', async (t) => {
      t.equal(await page.textContent('#policies tr[data-policy="default"] td[data-count="redis"]'), '0')
      await redis.client.sadd(`${keyPrefix}policy:default:origins`, 'https://new.example.net', 'https://other.example.net')
      await redis.client.zadd(`${keyPrefix}policy:default:origins:expiring`, Date.now() + 3_600_000, 'https://pr-1.preview.example.net')
      await redis.client.publish(`${keyPrefix}reload`, 'default')
      await page.waitForFunction(() => document.querySelector('#policies tr[data-policy="default"] td[data-count="redis"]')?.textContent === '2', undefined, WAIT)
      t.equal(await page.textContent('#policies tr[data-policy="default"] td[data-count="expiring"]'), '1')
    })

    await t.test('a request to the public port shows in the live view', async (t) => {
      await page.goto(`${gw.adminUrl}/#live`)
      await page.waitForSelector('#live:not([hidden])', WAIT)
      const path = `/api/live-${Date.now()}`
      const sent = performance.now()
      const res = await send(`${gw.url}${path}`, { headers: { origin: 'https://app.example.com' } })
      t.equal(res.status, 200)
      const row = page.locator('#decisions tbody tr', { hasText: path })
      await row.waitFor(WAIT)
      t.comment(`row shown ${Math.round(performance.now() - sent)} ms after the request was answered`)
      t.match(await row.textContent(), /allowed.*GET.*\/api\/.*default.*https:\/\/app\.example\.com/s)

      const denied = `/api/denied-${Date.now()}`
      await send(`${gw.url}${denied}`, { headers: { origin: 'https://old.example.com' } })
      await send(`${gw.url}${denied}`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-secret' } })
      const deniedRows = page.locator('#decisions tbody tr.denied', { hasText: denied })
      await deniedRows.nth(1).waitFor(WAIT)
      const texts = await deniedRows.allTextContents()
      t.ok(texts.some((x) => /denylisted/.test(x) && /rule https:\/\/old\.example\.com/.test(x)), 'a denial shows its reason and rule')
      t.ok(texts.some((x) => /header_not_allowed/.test(x) && /x-secret/.test(x)), 'a refused header shows as the detail')
      await send(`${gw.url}/partners/x`, { headers: { origin: 'https://nope.example.org' } })
      await page.locator('#decisions tbody tr.would_deny').first().waitFor(WAIT)

      // Filters: by outcome, by origin, by policy.
      await page.selectOption('#live-filters select[name="outcome"]', 'denied')
      t.ok((await page.locator('#decisions tbody tr').allTextContents()).every((x) => x.includes('denied')), 'outcome filter')
      await page.selectOption('#live-filters select[name="outcome"]', '')
      await page.fill('#live-filters input[name="origin"]', 'old.example')
      t.ok((await page.locator('#decisions tbody tr').allTextContents()).every((x) => x.includes('https://old.example.com')), 'origin filter')
      await page.fill('#live-filters input[name="origin"]', '')
      await page.selectOption('#live-filters select[name="policy"]', 'partners')
      const partners = await page.locator('#decisions tbody tr').allTextContents()
      t.ok(partners.length >= 1 && partners.every((x) => x.includes('partners')), 'policy filter')
      await page.selectOption('#live-filters select[name="policy"]', '')

      // Paused: new requests do not appear until resumed.
      await page.click('#pause')
      const paused = `/api/paused-${Date.now()}`
      await send(`${gw.url}${paused}`)
      await page.waitForFunction(() => document.querySelector('#live-count')?.textContent?.includes('paused') === true, undefined, WAIT)
      t.equal(await page.locator('#decisions tbody tr', { hasText: paused }).count(), 0, 'paused: not shown')
      await page.click('#pause')
      await page.locator('#decisions tbody tr', { hasText: paused }).waitFor(WAIT)
      t.pass('resumed: shown')
    })

    await t.test('attacker-controlled origins render as text; no script runs', async (t) => {
      for (const [i, origin] of XSS_ORIGINS.entries()) {
        // Raw bytes: the header reaches the gateway exactly as an attacker would send it.
        const res = await sendRaw(gw.url, `GET /api/xss-${i} HTTP/1.1\r\nHost: x\r\nOrigin: ${origin}\r\nConnection: close\r\n\r\n`)
        t.equal(res.status, 403, `${origin}: refused`)
      }
      for (const [i, origin] of XSS_ORIGINS.entries()) {
        const cell = page.locator('#decisions tbody tr', { hasText: `/api/xss-${i}` }).locator('td.origin')
        await cell.waitFor(WAIT)
        t.equal(await cell.textContent(), origin, `${origin}: shown exactly, as text`)
        t.equal(await cell.locator('script, img').count(), 0, `${origin}: no element made of it`)
      }
      // The explain form echoes nothing as markup either.
      await page.goto(`${gw.adminUrl}/#explain`)
      await page.fill('#explain-form input[name="origin"]', XSS_ORIGINS[0]!)
      await page.fill('#explain-form input[name="path"]', `/api/${XSS_ORIGINS[2]!}`)
      await page.click('#explain-form button[type="submit"]')
      await page.waitForSelector('#explain-result:not([hidden]) #explain-reason', WAIT)
      t.equal(await page.textContent('#explain-reason'), 'origin_not_allowed')
      await page.goto(`${gw.adminUrl}/#observed`)
      await page.waitForFunction(() => (document.querySelector('#observed-summary')?.textContent ?? '') !== '', undefined, WAIT)
      t.match(await page.textContent('#observed-summary'), /[1-9]\d* with an invalid Origin/, 'not serialized origins are counted as invalid, not listed')
      t.equal(await page.evaluate('window.__pwned'), undefined, 'window.__pwned stays unset')
    })

    await t.test('observed origins: sorted by requests, refused ones marked, a candidate diffed', async (t) => {
      for (let i = 0; i < 3; i++) await send(`${gw.url}/api/o`, { headers: { origin: 'https://a.example.com' } })
      await send(`${gw.url}/api/o`, { headers: { origin: 'https://evil.example.org' } })
      await page.goto(`${gw.adminUrl}/#observed`)
      await page.selectOption('#observed-filters select[name="policy"]', 'default')
      await page.click('#observed-filters button[type="submit"]')
      await page.locator('#observed-origins tbody tr', { hasText: 'https://evil.example.org' }).waitFor(WAIT)
      const rows = await page.locator('#observed-origins tbody tr').evaluateAll((trs) => trs.map((tr) => ({ origin: tr.querySelector('td')?.firstChild?.textContent, requests: Number(tr.children[1]?.textContent), refused: tr.classList.contains('refused') })))
      const counts = rows.map((r) => r.requests)
      t.same(counts, [...counts].sort((a, b) => b - a), 'most requests first')
      t.match(rows.find((r) => r.origin === 'https://evil.example.org'), { refused: true })
      t.match(rows.find((r) => r.origin === 'https://a.example.com'), { refused: false, requests: 3 })
      // Candidate: drop the wildcard; https://a.example.com (3 requests) would be refused.
      await page.waitForFunction(() => (document.querySelector('#candidate') as HTMLTextAreaElement | null)?.value.includes('https://*.example.com') === true, undefined, WAIT)
      await page.fill('#candidate', 'https://app.example.com')
      await page.click('#diff-form button[type="submit"]')
      const flip = page.locator('#diff tbody tr', { hasText: 'https://a.example.com' })
      await flip.waitFor(WAIT)
      t.match(await flip.textContent(), /3.*allowed.*denied/s)
      t.match(await page.textContent('#diff-message'), /would be refused/)
    })

    await t.test('screenshots of the overview and the live view', async (t) => {
      await page.goto(`${gw.adminUrl}/#overview`)
      await page.waitForSelector('#policies tr[data-policy="default"]', WAIT)
      await page.screenshot({ path: join(SCREENSHOTS, 'admin-overview.png'), fullPage: true })
      await page.goto(`${gw.adminUrl}/#live`)
      await page.locator('#decisions tbody tr').first().waitFor(WAIT)
      await page.screenshot({ path: join(SCREENSHOTS, 'admin-live.png'), fullPage: true })
      t.pass(`saved in ${SCREENSHOTS}`)
    })

    t.same(errors, [], 'no console error or warning (a CSP violation would be one)')
  })
}
