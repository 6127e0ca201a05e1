// Without trustProxy, a client's X-Forwarded-Host never reaches the upstream, even on a
// request without Host (HTTP/1.0), where there is no value to replace it with.
import { connect } from 'node:net'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

t.test('HTTP/1.0 without Host: the spoofed X-Forwarded-Host is dropped', async (t) => {
  const upstream = await startUpstream()
  const gw = await startTestGateway({ policies: { default: { origins: ['https://app.example.com'] } }, routes: [{ path: '/', upstream: upstream.url }] })
  t.teardown(async () => { await gw.close(); await upstream.close() })
  const response = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(new URL(gw.url).port), '127.0.0.1', () => {
      socket.write('GET /x HTTP/1.0\r\nX-Forwarded-Host: attacker.example\r\nX-Forwarded-Proto: https\r\n\r\n')
    })
    let data = ''
    socket.on('data', (c: Buffer) => { data += c.toString() })
    socket.on('end', () => resolve(data))
    socket.on('error', reject)
  })
  t.match(response, /^HTTP\/1\.[01] 200 /)
  t.equal(upstream.seen.length, 1)
  t.equal(upstream.seen[0]!.headers['x-forwarded-host'], undefined, 'not forwarded')
  t.equal(upstream.seen[0]!.headers['x-forwarded-proto'], 'http', 'replaced, not trusted')
})
