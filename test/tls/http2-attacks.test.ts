// HTTP/2-specific attacks on the public port are cut, while a well-behaved client on its own
// connection is served throughout: rapid reset (CVE-2023-44487), CONTINUATION floods
// (CVE-2024-27316 and kin), oversized header lists, too many headers, pseudo-header abuse and
// connection-specific headers (RFC 9113 §8.2.2, §8.3). docs/security.md names the Node
// settings that bound each.
import { constants } from 'node:http2'
import t from 'tap'
import { startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { FLAG, FRAME, headerBlock, rawH2, type Frame } from '../helpers/h2-frames.js'
import { h2Session, makeTestCa, sendH2, type TestCa } from '../helpers/tls.js'

const APP = 'https://app.example.com'

let ca: TestCa
let upstream: Upstream
let gw: TestGateway
let port: number
t.before(async () => {
  ca = makeTestCa()
  const { certFile, keyFile } = ca.issue('server')
  upstream = await startUpstream()
  gw = await startTestGateway({ server: { tls: { certFile, keyFile } }, policies: { default: { origins: [APP] } }, routes: [{ path: '/', upstream: upstream.url }], log: { level: 'warn' } })
  port = Number(new URL(gw.url).port)
})
t.teardown(async () => {
  await gw.close()
  await upstream.close()
  ca.remove()
})

/** A well-behaved client on its own connection, sending requests one after another until stopped. */
function bystander (): { stop: () => Promise<number[]> } {
  const state = { running: true }
  const statuses: number[] = []
  const done = (async () => {
    const session = await h2Session(gw.url, ca.ca)
    try {
      while (state.running) statuses.push((await sendH2(session, '/bystander', { headers: { origin: APP } })).status)
      statuses.push((await sendH2(session, '/bystander', { headers: { origin: APP } })).status)
    } finally {
      session.close()
    }
  })()
  return {
    stop: async () => {
      state.running = false
      await done
      return statuses
    }
  }
}

const request = (authority: string, path = '/'): Buffer => headerBlock([[':method', 'GET'], [':scheme', 'https'], [':path', path], [':authority', authority], ['origin', APP]])
const isGoaway = (f: Frame): boolean => f.type === FRAME.GOAWAY
const goawayCode = (f: Frame | undefined): number | undefined => f === undefined ? undefined : f.payload.readUInt32BE(4)

// Raw frames, not node:http2's client: a stream it cancels at once never leaves it, and one it
// cancels a tick later has been answered already, so neither is a rapid reset.
t.test('rapid reset: HEADERS + RST_STREAM pairs sent fast end in GOAWAY; a parallel client is served', async (t) => {
  const other = bystander()
  const raw = await rawH2(port, ca.ca)
  let stream = 1
  let sent = 0
  while (!raw.socket.destroyed && raw.frames.find(isGoaway) === undefined && sent < 50_000) {
    raw.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, stream, request(`127.0.0.1:${port}`, `/raw-${sent}`))
    raw.send(FRAME.RST_STREAM, 0, stream, Buffer.from([0, 0, 0, constants.NGHTTP2_CANCEL]))
    stream += 2
    sent++
    if (sent % 20 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  const goaway = await raw.waitFor(isGoaway)
  t.ok(sent < 50_000, `cut after ${sent} reset streams`)
  t.not(goaway, undefined, 'the server sent GOAWAY')
  t.not(goawayCode(goaway), constants.NGHTTP2_NO_ERROR, `GOAWAY with an error code (${String(goawayCode(goaway))})`)
  raw.socket.destroy()
  const statuses = await other.stop()
  t.ok(statuses.length > 0 && statuses.every((s) => s === 200), `the parallel client was served (${statuses.length} requests)`)
})

t.test('CONTINUATION flood: a header block that never ends is cut; a parallel client is served', async (t) => {
  const other = bystander()
  const raw = await rawH2(port, ca.ca)
  // HEADERS without END_HEADERS, then CONTINUATION frames that never set it.
  raw.send(FRAME.HEADERS, FLAG.END_STREAM, 1, request(`127.0.0.1:${port}`, '/flood'))
  let continuations = 0
  while (!raw.socket.destroyed && raw.frames.find(isGoaway) === undefined && continuations < 100_000) {
    raw.send(FRAME.CONTINUATION, 0, 1, headerBlock([[`x-flood-${continuations}`, 'a']]))
    continuations++
    if (continuations % 20 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  const goaway = await raw.waitFor(isGoaway)
  await raw.closed
  t.ok(continuations < 100_000, `the connection was ended after ${continuations} CONTINUATION frames`)
  // The GOAWAY may be lost when the server resets the connection under frames still arriving.
  t.ok(goaway !== undefined || raw.socket.destroyed, `closed by the server (GOAWAY code ${String(goawayCode(goaway))})`)
  t.notOk(raw.frames.some((f) => f.type === FRAME.HEADERS && f.stream === 1), 'the request was never answered')
  const statuses = await other.stop()
  t.ok(statuses.length > 0 && statuses.every((s) => s === 200), `the parallel client was served (${statuses.length} requests)`)
})

t.test('CONTINUATION frames with empty payloads are cut too', async (t) => {
  const raw = await rawH2(port, ca.ca)
  raw.send(FRAME.HEADERS, FLAG.END_STREAM, 1, request(`127.0.0.1:${port}`, '/empty-flood'))
  let continuations = 0
  while (!raw.socket.destroyed && raw.frames.find(isGoaway) === undefined && continuations < 100_000) {
    raw.send(FRAME.CONTINUATION, 0, 1)
    continuations++
    if (continuations % 20 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  await raw.closed
  t.ok(continuations < 100_000, `cut after ${continuations} empty CONTINUATION frames`)
})

t.test('an oversized header list resets the stream; the session goes on', async (t) => {
  const session = await h2Session(gw.url, ca.ca)
  t.teardown(() => { session.close() })
  session.on('error', () => {})
  await t.rejects(sendH2(session, '/big', { headers: { 'x-big': 'a'.repeat(20_000) } }), { code: 'ERR_HTTP2_STREAM_ERROR', message: /ENHANCE_YOUR_CALM/ }, 'past SETTINGS_MAX_HEADER_LIST_SIZE: the stream is reset')
  t.equal(upstream.seen.filter((s) => s.url === '/big').length, 0, 'nothing reached the upstream')
  t.equal((await sendH2(session, '/after-big')).status, 200, 'the same session serves the next request')
})

t.test('too many header lines: 431 just past maxHeadersCount, a reset stream far past it', async (t) => {
  const session = await h2Session(gw.url, ca.ca)
  t.teardown(() => { session.close() })
  const headers = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']))
  t.equal((await sendH2(session, '/count', { headers: headers(99) })).status, 200, '99 headers + nothing else: served')
  const over = await sendH2(session, '/count', { headers: headers(101) })
  t.equal(over.status, 431, '101 headers: 431')
  t.match(JSON.parse(over.body), { code: 'CORSGATE_TOO_MANY_HEADERS' })
  const session2 = await h2Session(gw.url, ca.ca)
  t.teardown(() => { session2.close() })
  session2.on('error', () => {})
  await t.rejects(sendH2(session2, '/count', { headers: headers(300) }), 'far past the limit: the stream is reset')
})

t.test('pseudo-header abuse and connection-specific headers are refused by the protocol layer', async (t) => {
  const authority = `127.0.0.1:${port}`
  const cases: Array<[string, Array<[string, string]>]> = [
    ['an unknown pseudo-header', [[':method', 'GET'], [':scheme', 'https'], [':path', '/p'], [':authority', authority], [':evil', 'yes']]],
    ['a pseudo-header after a regular one', [[':method', 'GET'], [':scheme', 'https'], ['x-a', 'b'], [':path', '/p'], [':authority', authority]]],
    ['a repeated :path', [[':method', 'GET'], [':scheme', 'https'], [':path', '/p'], [':path', '/admin'], [':authority', authority]]],
    ['no :path', [[':method', 'GET'], [':scheme', 'https'], [':authority', authority]]],
    ['Connection: keep-alive', [[':method', 'GET'], [':scheme', 'https'], [':path', '/p'], [':authority', authority], ['connection', 'keep-alive']]],
    ['Transfer-Encoding: chunked', [[':method', 'GET'], [':scheme', 'https'], [':path', '/p'], [':authority', authority], ['transfer-encoding', 'chunked']]],
    ['an upper-case header name', [[':method', 'GET'], [':scheme', 'https'], [':path', '/p'], [':authority', authority], ['X-Upper', 'v']]]
  ]
  const before = upstream.seen.length
  for (const [name, pairs] of cases) {
    const raw = await rawH2(port, ca.ca)
    raw.send(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock(pairs))
    const answer = await raw.waitFor((f) => (f.stream === 1 && (f.type === FRAME.RST_STREAM || f.type === FRAME.HEADERS)) || f.type === FRAME.GOAWAY)
    t.ok(answer !== undefined && answer.type !== FRAME.HEADERS, `${name}: refused (frame type ${String(answer?.type)})`)
    raw.socket.destroy()
  }
  t.same(upstream.seen.slice(before).map((s) => s.url).filter((u) => u === '/p'), [], 'none reached the upstream')
})

t.test('the server announces its stream and header limits', async (t) => {
  const session = await h2Session(gw.url, ca.ca)
  t.teardown(() => { session.close() })
  t.equal(session.remoteSettings.maxConcurrentStreams, 100)
  t.equal(session.remoteSettings.maxHeaderListSize, 16 * 1024)
  t.equal(session.remoteSettings.enablePush, false)
})
