// https:// upstreams are verified: a certificate no CA vouches for gives 502, a configured
// CA file makes it trusted. (@fastify/reply-from with its defaults would skip verification.)
import { readFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'

const dir = fileURLToPath(new URL('../fixtures/tls/', import.meta.url))

t.test('self-signed upstream: refused without its CA, served with it', async (t) => {
  let hits = 0
  const server = createServer({ key: readFileSync(`${dir}key.pem`), cert: readFileSync(`${dir}cert.pem`) }, (_req, res) => { hits++; res.end('secure') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const upstream = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(() => { server.closeAllConnections(); server.close() })

  const strict = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream }] })
  const res = await send(`${strict.url}/x`, { headers: { origin: 'https://app.example.com' } })
  await strict.close()
  t.equal(res.status, 502, 'an unverifiable certificate is an unavailable upstream')
  t.equal(hits, 0, 'no request was sent over the unverified connection')

  const trusting = await startTestGateway({ server: { upstreamCaFile: `${dir}cert.pem` }, policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream }] })
  const ok = await send(`${trusting.url}/x`, { headers: { origin: 'https://app.example.com' } })
  await trusting.close()
  t.equal(ok.status, 200)
  t.equal(ok.body, 'secure')
})
