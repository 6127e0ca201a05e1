// Frame boundaries without payload parsing: cap, held-back headers, stopping between frames.
import t from 'tap'
import { closeFrame, FrameScanner } from '../../src/gateway/websocket/frame-scanner.js'

/** A frame as a client sends it (masked) or a server does (unmasked); payload left as is. */
function frame (opcode: number, payloadLength: number, { fin = true, masked = false } = {}): Buffer {
  const ext = payloadLength < 126 ? 0 : payloadLength < 65536 ? 2 : 8
  const head = Buffer.alloc(2 + ext + (masked ? 4 : 0))
  head[0] = (fin ? 0x80 : 0) | opcode
  head[1] = (masked ? 0x80 : 0) | (ext === 0 ? payloadLength : ext === 2 ? 126 : 127)
  if (ext === 2) head.writeUInt16BE(payloadLength, 2)
  if (ext === 8) head.writeBigUInt64BE(BigInt(payloadLength), 2)
  return Buffer.concat([head, Buffer.alloc(payloadLength, 0x61)])
}

t.test('passes frames of every length encoding unchanged, whatever the read boundaries', async (t) => {
  const stream = Buffer.concat([frame(1, 5), frame(2, 300, { masked: true }), frame(2, 70_000), frame(9, 0), frame(1, 125, { masked: true })])
  for (const step of [1, 2, 3, 7, 13, 1000, stream.length]) {
    const scanner = new FrameScanner(1 << 20)
    const out: Buffer[] = []
    for (let i = 0; i < stream.length; i += step) out.push(scanner.scan(stream.subarray(i, i + step)))
    t.ok(Buffer.concat(out).equals(stream), `reads of ${step} bytes`)
    t.ok(scanner.atBoundary)
    t.equal(scanner.stopped, undefined)
  }
})

t.test('a header split across reads is held back, so nothing of it passes before it is whole', async (t) => {
  const scanner = new FrameScanner(1 << 20)
  const f = frame(2, 70_000)
  t.equal(scanner.scan(f.subarray(0, 5)).length, 0)
  t.notOk(scanner.atBoundary)
  t.equal(scanner.scan(f.subarray(5)).length, f.length)
})

t.test('the cap counts a whole message across fragments, control frames aside', async (t) => {
  const scanner = new FrameScanner(100)
  const ok = Buffer.concat([frame(1, 60, { fin: false }), frame(9, 10), frame(0, 40)])
  t.equal(scanner.scan(ok).length, ok.length, '60 + 40 in two fragments, a ping between: at the cap, passes')
  const before = frame(2, 10)
  const over = Buffer.concat([before, frame(2, 60, { fin: false }), frame(0, 41)])
  const out = scanner.scan(over)
  t.equal(scanner.stopped, 'too_big')
  t.equal(out.length, before.length + 62, 'everything before the frame that crossed the cap passed')
  t.equal(scanner.scan(frame(1, 1)).length, 0, 'nothing passes after')
})

t.test('64-bit lengths are read whole', async (t) => {
  const scanner = new FrameScanner(Number.MAX_SAFE_INTEGER)
  const head = Buffer.from([0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]) // 2^32 bytes
  t.equal(scanner.scan(head).length, head.length)
  t.notOk(scanner.atBoundary, 'inside a 4 GiB payload')
  const capped = new FrameScanner(4 * 1024 * 1024)
  t.equal(capped.scan(head).length, 0)
  t.equal(capped.stopped, 'too_big')
})

t.test('stopAtBoundary lets the frame in flight finish, then stops', async (t) => {
  const scanner = new FrameScanner(1 << 20)
  const f1 = frame(2, 100)
  t.equal(scanner.scan(f1.subarray(0, 50)).length, 50)
  scanner.stopAtBoundary = true
  const rest = Buffer.concat([f1.subarray(50), frame(1, 3)])
  t.equal(scanner.scan(rest).length, f1.length - 50, 'the rest of the frame, not the next one')
  t.equal(scanner.stopped, 'closing')
})

t.test('close frames: unmasked to a client, masked with a zero key to a server', async (t) => {
  t.same([...closeFrame(1001, false)], [0x88, 0x02, 0x03, 0xe9])
  t.same([...closeFrame(1009, true)], [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xf1])
})
