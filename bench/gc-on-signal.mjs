// Bench-only preload (bench/websocket.ts): SIGWINCH runs a full garbage collection, so the
// benchmark can read RSS with the handshakes' garbage gone. Needs node --expose-gc.
process.on('SIGWINCH', () => {
  globalThis.gc?.()
  process.stderr.write('gc done\n')
})
