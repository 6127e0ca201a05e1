// `server.workers`, so one host can use every core outside Kubernetes.
//
// With workers > 1 the `corsgate start` process becomes a primary that only supervises: it
// forks N workers (node:cluster), each of which runs the whole gateway (`startGateway`) exactly
// as a single process does. How they share the public port depends on the Node line:
// - `reuseport` (Node ≥ 22.12 and ≥ 23.1, where `listen()` takes `reusePort`): every worker
//   binds the port itself with SO_REUSEPORT and accepts its own connections, as nginx's
//   `listen … reuseport` does; the kernel spreads new connections over the listeners, and no
//   connection passes through the primary. With `server.port: 0` the primary picks one free
//   port for all of them. A worker's accept queue goes with it when it dies (the kernel resets
//   connections that were queued there but not yet accepted).
// - `cluster` (older lines): node:cluster listens in the primary and hands each connection to
//   a worker round robin.
// Each worker has its own admin server on `admin.port + i` (worker i = 0…N−1), because
// `/metrics`, `/readyz` and `/policies` describe the process that answers them: scrape every
// worker. (Admin port 0 stays 0, and node:cluster then hands every worker the same ephemeral
// port, shared: give workers an explicit port.)
//
// Shutdown: SIGTERM or SIGINT to the primary is passed to every worker as a message, and each
// drains as a single process does (close-with-grace in cli.ts); the primary exits 0 once all
// have exited, or 1 after `server.shutdownGraceMs` + 5 s with the stragglers killed. A worker
// that dies is replaced; one that dies before its gateway listened (a bad port, say) stops them all.
import cluster, { type Worker } from 'node:cluster'
import { createServer } from 'node:net'
import type { Logger } from 'pino'
import type { LoadedConfig } from './config/load.js'

const INDEX_ENV = 'CORSGATE_WORKER_INDEX'
/** The public port the primary picked for `server.port: 0` in `reuseport` mode. */
const PORT_ENV = 'CORSGATE_WORKER_PORT'
/** The IPC message a worker sends once its gateway listens. */
export const LISTENING_MESSAGE = 'corsgate:listening'
/** The IPC message that asks a worker to drain and exit. */
export const SHUTDOWN_MESSAGE = 'corsgate:shutdown'
/** The IPC message that asks a worker to reload its config file (the primary got SIGHUP). */
export const RELOAD_MESSAGE = 'corsgate:reload'
const RESTART_DELAY_MS = 1_000

/** How workers share the public port (see the top of this file). */
export type WorkersMode = 'reuseport' | 'cluster'

/** `reuseport` where `listen()` takes `reusePort` (Node 22.12+, 23.1+), else `cluster`. */
export function workersMode (version: string = process.versions.node): WorkersMode {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number)
  const reusePort = major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12)
  return reusePort ? 'reuseport' : 'cluster'
}

/**
 * Extra options for the public server's `listen()`: in a corsgate worker in `reuseport` mode, its own
 * SO_REUSEPORT socket (`exclusive`, so node:cluster does not route the listen through the primary).
 */
export function publicListenOptions (): { exclusive?: boolean, reusePort?: boolean } {
  // Only in a worker corsgate's primary forked: a library user's own cluster keeps its sharing.
  const ours = cluster.isWorker && process.env[INDEX_ENV] !== undefined
  return ours && workersMode() === 'reuseport' ? { exclusive: true, reusePort: true } : {}
}

/** Tells the primary that this worker's gateway listens (a no-op outside a worker). */
export function reportListening (): void {
  if (cluster.isWorker && process.send !== undefined) process.send(LISTENING_MESSAGE)
}

/** This process's worker index, or undefined when it is not a cluster worker. */
export function workerIndex (): number | undefined {
  return cluster.isWorker ? Number(process.env[INDEX_ENV] ?? 0) : undefined
}

/** A worker's own configuration: the admin port moved by its index (0 stays 0), the public port the primary picked. */
export function workerConfig (loaded: LoadedConfig, index: number, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const { admin, server } = loaded.config
  const picked = env[PORT_ENV] === undefined ? undefined : Number(env[PORT_ENV])
  const adminPort = index === 0 || admin.port === 0 ? admin.port : admin.port + index
  if (picked === undefined && adminPort === admin.port) return loaded
  return { ...loaded, config: { ...loaded.config, server: { ...server, port: picked ?? server.port }, admin: { ...admin, port: adminPort } } }
}

/** A port free on `host` now, for every `reuseport` worker to bind. */
async function pickPort (host: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
}

export interface SuperviseOptions {
  count: number
  /** `server.host` and `server.port`: with port 0 in `reuseport` mode, the primary picks one port for all. */
  host: string
  port: number
  shutdownGraceMs: number
}

/** Runs the primary: forks `count` workers, replaces one that dies, drains all on SIGTERM/SIGINT. */
export async function superviseWorkers ({ count, host, port, shutdownGraceMs }: SuperviseOptions, logger: Logger): Promise<void> {
  const mode = workersMode()
  const env: Record<string, string> = {}
  if (mode === 'reuseport' && port === 0) env[PORT_ENV] = String(await pickPort(host))
  const workers = new Map<number, Worker>()
  const listened = new Set<number>()
  let stopping = false
  let exitCode = 0

  const fork = (index: number): void => {
    const worker = cluster.fork({ ...env, [INDEX_ENV]: String(index) })
    workers.set(index, worker)
    worker.on('message', (message) => { if (message === LISTENING_MESSAGE) listened.add(index) })
    worker.on('exit', (code, signal) => {
      workers.delete(index)
      if (stopping) {
        if (workers.size === 0) process.exit(exitCode)
        return
      }
      if (!listened.has(index)) {
        logger.error({ worker: index, code, signal }, 'worker exited before listening; stopping every worker')
        stop(1)
        return
      }
      logger.error({ worker: index, code, signal }, 'worker exited; starting a new one')
      setTimeout(() => { if (!stopping) fork(index) }, RESTART_DELAY_MS).unref()
    })
  }

  const stop = (code: number): void => {
    if (stopping) return
    stopping = true
    exitCode = code
    if (workers.size === 0) process.exit(code)
    for (const worker of workers.values()) {
      if (worker.isConnected()) worker.send(SHUTDOWN_MESSAGE)
      else worker.process.kill('SIGTERM')
    }
    setTimeout(() => {
      logger.error({ workers: [...workers.keys()] }, 'workers still running after the grace period; killing them')
      for (const worker of workers.values()) worker.process.kill('SIGKILL')
      process.exit(1)
    }, shutdownGraceMs + 5_000).unref()
  }

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      logger.info({ signal, workers: workers.size }, 'shutting down workers')
      stop(0)
    })
  }
  // SIGHUP reloads the config file: each worker does its own (it also watches the file).
  process.on('SIGHUP', () => {
    for (const worker of workers.values()) if (worker.isConnected()) worker.send(RELOAD_MESSAGE)
  })
  logger.info({ workers: count, mode, ...(env[PORT_ENV] === undefined ? {} : { port: Number(env[PORT_ENV]) }) }, 'starting workers')
  for (let i = 0; i < count; i++) fork(i)
}
