// The admin page's explain form gives the answer `corsgate check` gives for the same config:
// allowed, denied, a refused header, and no Origin.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import t from 'tap'
import { chromiumReady, launchChromium } from '../helpers/browser.js'
import { cleanEnv, ROOT } from '../helpers/cli-process.js'
import { startTestGateway, testConfigYaml, type GatewayConfigInput } from '../helpers/gateway.js'

t.setTimeout(300_000)
const WAIT = { timeout: 15_000 }

const INPUT: GatewayConfigInput = {
  policies: { default: { origins: ['https://app.example.com', 'https://*.example.com'], deny: ['https://old.example.com'], allowHeaders: ['Content-Type', 'Authorization'], maxAge: 600, noOrigin: 'allow' } },
  routes: [{ path: '/api/', upstream: 'http://127.0.0.1:9' }]
}

interface Case { name: string, origin: string, method: string, headers: string[], path: string }
const CASES: Case[] = [
  { name: 'allowed preflight', origin: 'https://shop.example.com', method: 'PUT', headers: ['Content-Type', 'Authorization'], path: '/api/items' },
  { name: 'allowed simple GET', origin: 'https://app.example.com', method: 'GET', headers: [], path: '/api/items' },
  { name: 'denied', origin: 'https://old.example.com', method: 'GET', headers: [], path: '/api/items' },
  { name: 'header refused', origin: 'https://app.example.com', method: 'POST', headers: ['X-Secret'], path: '/api/items' },
  { name: 'no Origin', origin: '', method: 'GET', headers: [], path: '/api/items' }
]

async function check (config: string, c: Case): Promise<Record<string, unknown>> {
  const args = ['--import', 'tsx', 'src/cli.ts', 'check', '--config', config, '--origin', c.origin, '--method', c.method, '--path', c.path, '--json', ...c.headers.flatMap((h) => ['--header', h])]
  const child = spawn(process.execPath, args, { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  await once(child, 'close')
  return JSON.parse(out) as Record<string, unknown>
}

/** What the page shows, read back into the shape of `check --json`. */
async function explainInPage (page: Page, c: Case): Promise<Record<string, unknown>> {
  await page.fill('#explain-form input[name="origin"]', c.origin)
  await page.fill('#explain-form input[name="method"]', c.method)
  await page.fill('#explain-form input[name="header"]', c.headers.join(', '))
  await page.fill('#explain-form input[name="path"]', c.path)
  // The result is replaced on each submission: wait for this one's.
  await page.evaluate(() => { document.querySelector('#explain-verdict')?.replaceChildren() })
  await page.click('#explain-form button[type="submit"]')
  await page.waitForSelector('#explain-reason', WAIT)
  // No named function inside: the test runner's compiler would wrap it in a helper the page lacks.
  return await page.evaluate(() => {
    const facts: Record<string, string> = {}
    for (const name of ['decision', 'detail', 'rule', 'kind', 'status']) facts[name] = document.querySelector(`#explain-facts dd[data-fact="${name}"]`)?.textContent ?? ''
    const headers: Record<string, string> = {}
    for (const tr of document.querySelectorAll('#explain-headers tbody tr')) headers[tr.querySelector('th')!.textContent!] = tr.querySelector('td')!.textContent!
    return { verdict: document.querySelector('#explain-verdict .badge')?.textContent, reason: document.querySelector('#explain-reason')?.textContent, ...facts, headers }
  })
}

if (chromiumReady()) {
  t.test('explain form = corsgate check', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'corsgate-explain-'))
    const config = join(dir, 'corsgate.yaml')
    writeFileSync(config, testConfigYaml(INPUT))
    const gw = await startTestGateway(INPUT)
    const browser = await launchChromium()
    t.teardown(async () => { await browser.close(); await gw.close() })
    const page = await browser.context.newPage()
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(`${gw.adminUrl}/#explain`)

    const expected = await Promise.all(CASES.map(async (c) => await check(config, c)))
    for (const [i, c] of CASES.entries()) {
      const want = expected[i]!
      const got = await explainInPage(page, c)
      t.equal(got.verdict, want.allowed === true ? 'ALLOWED' : 'DENIED', `${c.name}: verdict`)
      t.equal(got.reason, want.reason, `${c.name}: reason ${String(want.reason)}`)
      t.equal(got.decision, want.decision, `${c.name}: decision`)
      t.equal(got.detail, want.detail ?? '—', `${c.name}: detail`)
      t.equal(got.rule, want.rule === null ? '—' : `${String(want.rule)} (from ${String(want.ruleSource)})`, `${c.name}: rule`)
      t.equal(got.kind, want.kind, `${c.name}: kind`)
      t.equal(got.status, String(want.status), `${c.name}: status`)
      t.same(got.headers, want.headers, `${c.name}: exactly the headers check lists`)
    }
    t.match(expected.map((e) => e.reason), ['origin_allowed', 'origin_allowed', 'denylisted', 'header_not_allowed', 'no_origin'], 'the cases cover what they say')
    t.same(errors, [])
  })
}
