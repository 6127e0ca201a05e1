// `server.workers` (node:cluster), so one host can use every core outside Kubernetes.
//
// With workers > 1 the `corsgate start` process becomes a primary that only supervises: it
// forks N workers, each of which runs the whole gateway (`startGateway`) exactly as a single
// process does. The public port is shared: node:cluster listens in the primary and hands the
// connections to the workers round robin. Each worker has its own admin server on
// `admin.port + i` (worker i = 0…N−1), because `/metrics`, `/readyz` and `/policies` describe
// the process that answers them: scrape every worker. (Admin port 0 stays 0, and node:cluster
// then hands every worker the same ephemeral port, shared: give workers an explicit port.)
//
// Shutdown: SIGTERM or SIGINT to the primary is passed to every worker as a message, and each
// drains as a single process does (close-with-grace in cli.ts); the primary exits 0 once all
// have exited, or 1 after `server.shutdownGraceMs` + 5 s with the stragglers killed. A worker
// that dies is replaced; one that dies before it ever listened (a bad port, say) stops them all.
import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import type { LoadedConfig } from './config/load.js'

const INDEX_ENV = 'CORSGATE_WORKER_INDEX'
/** The IPC message that asks a worker to drain and exit. */
export const SHUTDOWN_MESSAGE = 'corsgate:shutdown'
/** The IPC message that asks a worker to reload its config file (the primary got SIGHUP). */
export const RELOAD_MESSAGE = 'corsgate:reload'
const RESTART_DELAY_MS = 1_000

/** This process's worker index, or undefined when it is not a cluster worker. */
export function workerIndex (): number | undefined {
  return cluster.isWorker ? Number(process.env[INDEX_ENV] ?? 0) : undefined
}

/** A worker's own configuration: the admin port moved by its index (0 stays 0). */
export function workerConfig (loaded: LoadedConfig, index: number): LoadedConfig {
  const admin = loaded.config.admin
  if (index === 0 || admin.port === 0) return loaded
  return { ...loaded, config: { ...loaded.config, admin: { ...admin, port: admin.port + index } } }
}

/** Runs the primary: forks `count` workers, replaces one that dies, drains all on SIGTERM/SIGINT. */
export function superviseWorkers (count: number, logger: Logger, shutdownGraceMs: number): void {
  const workers = new Map<number, Worker>()
  const listened = new Set<number>()
  let stopping = false
  let exitCode = 0

  const fork = (index: number): void => {
    const worker = cluster.fork({ [INDEX_ENV]: String(index) })
    workers.set(index, worker)
    worker.on('listening', () => listened.add(index))
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
  logger.info({ workers: count }, 'starting workers')
  for (let i = 0; i < count; i++) fork(i)
}
