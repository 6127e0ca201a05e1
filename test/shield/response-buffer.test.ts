// An answer kept for a slow reader: memory first, then a temporary file written in batches
// behind the reader, read back intact and in order, the file never left on disk.
import { createHash } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { request, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { ResponseBuffer } from '../../src/gateway/shield/buffers.js'
import { startTestGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/redis-gateway.js'
import { startSerialUpstream } from '../helpers/serial-upstream.js'

const ORIGIN = 'https://app.example.com'

function filesUnder (dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
}

t.test('pushes and takes interleaved: every byte back in order, the file unlinked while in use', async (t) => {
  const tempDir = t.testdir()
  let spills = 0
  const buffer = new ResponseBuffer({ memoryBytes: 1000, maxFileBytes: 1 << 30, tempDir, onSpill: () => { spills++ } })
  const sent: Buffer[] = []
  const got: Buffer[] = []
  for (let i = 0; i < 300; i++) {
    const chunk = Buffer.alloc(700 + (i % 13) * 97, i % 251)
    sent.push(chunk)
    t.equal(buffer.push(chunk), true)
    // The reader takes a little now and then, sometimes while writes are still in flight.
    if (i % 7 === 0) {
      const c = await buffer.take()
      if (c !== undefined) got.push(c)
    }
    if (i === 150) {
      // A take from the file waits for it to be open (and so unlinked).
      got.push((await buffer.take())!)
      t.same(filesUnder(tempDir), [], 'no file to be seen while one is in use')
    }
  }
  for (let c = await buffer.take(); c !== undefined; c = await buffer.take()) got.push(c)
  t.equal(buffer.size, 0)
  const hash = (bs: Buffer[]): string => createHash('sha256').update(Buffer.concat(bs)).digest('hex')
  t.equal(Buffer.concat(got).length, Buffer.concat(sent).length)
  t.equal(hash(got), hash(sent), 'intact and in order')
  t.equal(spills, 1, 'counted once')
  // Drained: the next chunks are in memory again.
  buffer.push(Buffer.from('again'))
  t.equal((await buffer.take())?.toString(), 'again')
  buffer.dispose()
  t.same(filesUnder(tempDir), [])
})

t.test('a reader that waits for the whole answer gets 16 MiB back intact from the file', async (t) => {
  // More than loopback's socket buffers hold, so most of it has to wait in corsgate's file.
  const big = Buffer.alloc(16 * 1024 * 1024)
  for (let i = 0; i < big.length; i += 4) big.writeUInt32BE(i, i)
  const upstream = await startSerialUpstream((req, res) => { res.end(req.url === '/big' ? big : 'ok') })
  const gw = await startTestGateway({ policies: { default: { origins: [ORIGIN] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    request(`${gw.url}/big`, { headers: { origin: ORIGIN }, agent: false }, resolve).on('error', reject).end()
  })
  res.pause()
  await waitFor(() => upstream.finished === 1, 30_000, 'the upstream to finish sending 16 MiB')
  const hash = createHash('sha256')
  let length = 0
  for await (const chunk of res as AsyncIterable<Buffer>) {
    hash.update(chunk)
    length += chunk.length
  }
  t.equal(length, big.length)
  t.equal(hash.digest('hex'), createHash('sha256').update(big).digest('hex'), 'intact')
  t.match(await (await fetch(`${gw.adminUrl}/metrics`)).text(), /corsgate_buffered_to_file_total\{direction="response"\} 1/, 'it went through the file')
})
