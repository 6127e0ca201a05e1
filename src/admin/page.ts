// The admin page's three files, read once and served as they are: no build step, nothing
// fetched from elsewhere, so the page works air-gapped. The script builds the DOM with
// `textContent` only: every value it shows (an Origin above all) is attacker-controlled.
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'

const ASSETS: Array<{ url: string, file: string, type: string }> = [
  { url: '/', file: 'index.html', type: 'text/html; charset=utf-8' },
  { url: '/page.js', file: 'page.js', type: 'text/javascript; charset=utf-8' },
  { url: '/page.css', file: 'page.css', type: 'text/css; charset=utf-8' }
]

export function pageRoutes (app: FastifyInstance): void {
  for (const asset of ASSETS) {
    // Next to this module in src/ and in dist/ alike (the build copies the folder).
    const body = readFileSync(new URL(`./page/${asset.file}`, import.meta.url), 'utf8')
    app.get(asset.url, async (_request, reply) => reply.type(asset.type).send(body))
  }
  // Browsers ask for it on their own; no icon is better than a 404 in the console.
  app.get('/favicon.ico', async (_request, reply) => reply.code(204).send())
}
