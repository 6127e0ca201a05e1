// A real `redis-server` for one test file: spawned on a free loopback port with no
// persistence, ready when it says so on stdout (an event, not a sleep). It can be killed
// with SIGKILL and restarted empty on the same port. With REDIS_URL set, that server is
// used instead and `kill9`/`restart` are unavailable (`external` is true).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'

export const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server'

export interface TestRedis {
  url: string
  port: number
  /** True when REDIS_URL points at a server we did not start. */
  external: boolean
  /** A plain client for the test's own edits (SADD, PUBLISH…). */
  client: Redis
  /** SIGKILL, and wait until the process is gone. */
  kill9: () => Promise<void>
  /** Start again, empty, on the same port with the same arguments. */
  restart: () => Promise<void>
  /** SIGSTOP / SIGCONT: a Redis that accepts connections but answers nothing (slow, hung). */
  pause: () => void
  resume: () => void
  close: () => Promise<void>
}

export interface TestRedisOptions {
  /** Extra server arguments, e.g. `['--notify-keyspace-events', 'KA']`. */
  args?: string[]
  /** A port chosen by the caller (e.g. one a gateway already points at); default: a free one. */
  port?: number
  /** Serve TLS only (rediss://) with this certificate, key and CA. */
  tls?: { certFile: string, keyFile: string, caFile: string }
  /** `requirepass` for the default user. */
  password?: string
}

export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export async function startRedis ({ args = [], port: wantedPort, tls, password }: TestRedisOptions = {}): Promise<TestRedis> {
  const externalUrl = process.env.REDIS_URL
  if (externalUrl !== undefined && externalUrl !== '') {
    const client = new Redis(externalUrl, { maxRetriesPerRequest: 1 })
    const unsupported = async (): Promise<void> => { throw new Error('not possible with REDIS_URL') }
    return {
      url: externalUrl,
      port: Number(new URL(externalUrl).port || 6379),
      external: true,
      client,
      kill9: unsupported,
      restart: unsupported,
      pause: () => { throw new Error('not possible with REDIS_URL') },
      resume: () => { throw new Error('not possible with REDIS_URL') },
      close: async () => { client.disconnect() }
    }
  }

  const port = wantedPort ?? await freePort()
  let proc: ChildProcess | undefined
  const launch = async (): Promise<void> => {
    const listen = tls === undefined
      ? ['--port', String(port)]
      : ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile, '--tls-auth-clients', 'no']
    const auth = password === undefined ? [] : ['--requirepass', password]
    const child = spawn(REDIS_SERVER_BIN, [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...auth, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    proc = child
    await new Promise<void>((resolve, reject) => {
      let out = ''
      const onData = (chunk: Buffer): void => {
        out += chunk.toString()
        if (out.includes('Ready to accept connections')) {
          child.stdout?.off('data', onData)
          child.stdout?.resume()
          resolve()
        }
      }
      child.stdout?.on('data', onData)
      child.stderr?.on('data', (c: Buffer) => { out += c.toString() })
      child.once('error', reject)
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)} before it was ready:\n${out}`)))
    })
  }
  await launch()
  const client = new Redis({
    host: '127.0.0.1',
    port,
    password,
    ...(tls === undefined ? {} : { tls: { ca: readFileSync(tls.caFile) } }),
    maxRetriesPerRequest: 1,
    retryStrategy: () => 50
  })
  client.on('error', () => { /* reconnects by itself; tests see command errors */ })

  const kill9 = async (): Promise<void> => {
    const child = proc
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    child.kill('SIGKILL')
    await gone
  }
  return {
    url: `${tls === undefined ? 'redis' : 'rediss'}://127.0.0.1:${port}`,
    port,
    external: false,
    client,
    kill9,
    restart: async () => {
      await kill9()
      await launch()
    },
    pause: () => { proc?.kill('SIGSTOP') },
    resume: () => { proc?.kill('SIGCONT') },
    close: async () => {
      client.disconnect()
      await kill9()
    }
  }
}

export interface TestSentinel {
  port: number
  close: () => Promise<void>
}

/** A real Sentinel (`redis-server --sentinel`) monitoring `masterPort` as `name`; ready at "+monitor". */
export async function startSentinel (masterPort: number, name: string): Promise<TestSentinel> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'corsgate-sentinel-'))
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nsentinel monitor ${name} 127.0.0.1 ${masterPort} 1\n`)
  const child = spawn(REDIS_SERVER_BIN, [conf, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] })
  await new Promise<void>((resolve, reject) => {
    let out = ''
    const onData = (chunk: Buffer): void => {
      out += chunk.toString()
      if (out.includes('+monitor master')) {
        child.stdout?.off('data', onData)
        child.stdout?.resume()
        resolve()
      }
    }
    child.stdout?.on('data', onData)
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`sentinel exited with ${String(code)}:\n${out}`)))
  })
  return {
    port,
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGKILL')
      await gone
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
