// With `admin.auth` on, Chromium gets 401 for the page without the token, and with it (as the
// password of the browser's own prompt) the page loads and every call it makes succeeds.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { chromiumReady, launchChromium } from '../helpers/browser.js'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'

const WAIT = { timeout: 15_000 }
const TOKEN = 'page-token-4f1c'

if (chromiumReady()) {
  t.test('the page behind admin.auth', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'corsgate-admin-auth-page-'))
    writeFileSync(join(dir, 'token'), TOKEN)
    const gw = await startTestGateway({ admin: { auth: { tokenFile: join(dir, 'token') } }, routes: [{ path: '/', upstream: 'http://127.0.0.1:9' }] })
    t.teardown(gw.close)

    const anonymous = await launchChromium()
    t.teardown(anonymous.close)
    const refused = await anonymous.context.newPage()
    // Headless Chromium has no one to type into the password prompt: it gives up on the 401.
    const outcome = await refused.goto(`${gw.adminUrl}/`).then((r) => `HTTP ${r?.status() ?? 0}`, (e: Error) => e.message)
    t.match(outcome, /HTTP 401|ERR_INVALID_AUTH_CREDENTIALS/, 'no token: the page is refused')
    t.equal(await refused.locator('#overview').count(), 0, 'and not shown')
    t.equal((await send(`${gw.adminUrl}/`)).status, 401, 'the page: 401 without the token')
    for (const path of ['/overview', '/decisions', '/policies', '/explain?origin=x', '/metrics']) {
      t.equal((await send(`${gw.adminUrl}${path}`)).status, 401, `${path}: 401 without the token`)
      t.equal((await send(`${gw.adminUrl}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200, `${path}: 200 with it`)
    }
    t.equal((await send(`${gw.adminUrl}/healthz`)).status, 200)
    t.equal((await send(`${gw.adminUrl}/readyz`)).status, 200)

    const operator = await launchChromium({ httpCredentials: { username: 'ops', password: TOKEN } })
    t.teardown(operator.close)
    const page = await operator.context.newPage()
    const failed: string[] = []
    page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`) })
    t.equal((await page.goto(`${gw.adminUrl}/`))?.status(), 200, 'with the token: the page')
    await page.waitForSelector('#policies tr[data-policy="default"]', WAIT)
    await send(`${gw.url}/authed`, { headers: { origin: 'https://app.example.com' } })
    await page.goto(`${gw.adminUrl}/#live`)
    await page.locator('#decisions tbody tr', { hasText: '/authed' }).waitFor(WAIT)
    t.same(failed, [], 'every call the page made was let in')
  })
}
