// Buffering on (the default) keeps streams streaming: Server-Sent Events (and so long-polls) reach
// the client as the upstream sends them, not when it ends. A 50 MiB upload is received whole
// into a temporary file, forwarded intact, and the file is gone afterwards.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { request, type IncomingMessage, type ServerResponse } from 'node:http'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { send } from '../helpers/http.js'
import { startUpstream } from '../helpers/upstream.js'

const ORIGIN = 'https://app.example.com'

t.test('Server-Sent Events pass each event as it comes, with buffering on', async (t) => {
  let stream: ServerResponse | undefined
  let opened: () => void = () => {}
  const streamOpen = new Promise<void>((resolve) => { opened = resolve })
  const upstream = await startUpstream((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    res.write('data: first\n\n')
    stream = res
    opened()
  })
  t.teardown(async () => { stream?.end(); await upstream.close() })
  const url = upstream.url
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: url }] })
  t.teardown(async () => { await gw.close() })

  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    request(`${gw.url}/events`, { headers: { origin: ORIGIN, accept: 'text/event-stream' }, agent: false }, resolve).on('error', reject).end()
  })
  await streamOpen
  const [first] = await once(res, 'data') as [Buffer]
  t.equal(first.toString(), 'data: first\n\n', 'the first event arrived while the stream is still open')
  stream!.write('data: second\n\n')
  const [second] = await once(res, 'data') as [Buffer]
  t.equal(second.toString(), 'data: second\n\n', 'and the next one as soon as it was sent')
  t.equal(res.headers['access-control-allow-origin'], ORIGIN)
  stream!.end()
  await once(res, 'end')
  res.destroy()
})

t.test('a 50 MiB upload goes to a temporary file and reaches the upstream intact', async (t) => {
  const tempDir = t.testdir()
  const upstream = await startUpstream((req, res, body) => {
    res.end(JSON.stringify({ sha256: createHash('sha256').update(body).digest('hex'), length: req.headers['content-length'], te: req.headers['transfer-encoding'] ?? null }))
  })
  const gw = await startTestGateway({
    server: { bodyLimit: 64 * 1024 * 1024, buffering: { tempDir } },
    policies: { default: { origins: [ORIGIN] } },
    routes: [{ path: '/', upstream: upstream.url }]
  })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const body = Buffer.alloc(50 * 1024 * 1024)
  for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i)
  const expected = createHash('sha256').update(body).digest('hex')

  const res = await send(`${gw.url}/upload`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' }, body })
  t.equal(res.status, 200)
  t.same(res.json(), { sha256: expected, length: String(body.length), te: null }, 'intact, and sent with its length although the client sent it chunked')
  t.match(await (await fetch(`${gw.adminUrl}/metrics`)).text(), /corsgate_buffered_to_file_total\{direction="request"\} 1/)
  t.same(readdirSync(tempDir, { recursive: true, withFileTypes: true }).filter((d) => !d.isDirectory()).map((d) => d.name), [], 'the temporary file is removed')
  const over = await send(`${gw.url}/upload`, { method: 'POST', headers: { origin: ORIGIN, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' }, body: Buffer.alloc(65 * 1024 * 1024) })
  t.equal(over.status, 413, 'a chunked body over bodyLimit is refused before the upstream sees it')
  t.equal(upstream.seen.length, 1)
})
