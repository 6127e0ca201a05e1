// Graceful shutdown on the TLS port: HTTP/2 sessions hear GOAWAY (no error) at once, open no
// new stream, and their streams in flight finish; a stream still open at the drain deadline is
// cut so shutdown ends on time.
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import t from 'tap'
import { startTestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { h2Session, makeTestCa, sendH2, type TestCa } from '../helpers/tls.js'

const APP = 'https://app.example.com'

let ca: TestCa
let upstream: Upstream
let held: ServerResponse[] = []
let arrived: (() => void) | undefined
t.before(async () => {
  ca = makeTestCa()
  // Holds every answer until the test releases it.
  upstream = await startUpstream((_req, res) => {
    held.push(res)
    arrived?.()
  })
})
t.teardown(async () => {
  for (const res of held) res.end()
  await upstream.close()
  ca.remove()
})

function release (): void {
  for (const res of held) res.end('done')
  held = []
}

t.test('GOAWAY first, then the streams in flight finish', async (t) => {
  const { certFile, keyFile } = ca.issue('drain')
  const gw = await startTestGateway({ server: { tls: { certFile, keyFile } }, policies: { default: { origins: [APP] } }, routes: [{ path: '/', upstream: upstream.url }] })
  const session = await h2Session(gw.url, ca.ca)
  session.on('error', () => {})
  const reached = new Promise<void>((resolve) => { arrived = resolve })
  const inFlight = sendH2(session, '/slow', { headers: { origin: APP } })
  await reached
  const goaway = once(session, 'goaway') as Promise<[number]>
  const closed = gw.close()
  const [code] = await goaway
  t.equal(code, 0, 'GOAWAY with NO_ERROR')
  // Refused at once, or (as Node 24 does, and Node 20 when the GOAWAY is still being taken in)
  // handed back and failed without an answer.
  let late: Error | undefined
  try {
    const stream = session.request({ ':path': '/late' })
    late = await new Promise<Error>((resolve) => {
      stream.once('error', resolve)
      stream.once('response', () => resolve(new Error('a stream opened after GOAWAY was answered')))
    })
  } catch (err) {
    late = err as Error
  }
  t.match(late, { code: /^ERR_HTTP2_(GOAWAY_SESSION|STREAM_ERROR)$/ }, 'no new stream after GOAWAY')
  release()
  const answer = await inFlight
  t.equal(answer.status, 200, 'the stream in flight finished')
  t.equal(answer.body, 'done')
  t.equal(answer.headers['access-control-allow-origin'], APP)
  await closed
  t.match(gw.logs.find((l) => l.msg === 'request' && l.path === '/slow'), { httpVersion: '2.0', status: 200 })
})

t.test('a stream still open at the drain deadline is cut, and shutdown completes', async (t) => {
  const { certFile, keyFile } = ca.issue('deadline')
  const gw = await startTestGateway({ server: { tls: { certFile, keyFile }, shutdownGraceMs: 500 }, policies: { default: { origins: [APP] } }, routes: [{ path: '/', upstream: upstream.url }] })
  const session = await h2Session(gw.url, ca.ca)
  session.on('error', () => {})
  const reached = new Promise<void>((resolve) => { arrived = resolve })
  const inFlight = sendH2(session, '/forever', { headers: { origin: APP } })
  inFlight.catch(() => {})
  await reached
  const sessionClosed = once(session, 'close')
  await gw.close()
  t.match(gw.logs.find((l) => l.msg === 'drain deadline reached: closing the connections still open'), { level: 40 })
  await t.rejects(inFlight, 'the stream was cut')
  await sessionClosed
  t.ok(session.destroyed, 'the session is gone')
  release()
})
