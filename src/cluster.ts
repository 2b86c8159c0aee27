import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import type { Logger } from 'pino'
import type { Config } from './config/load.js'
import { AggregatorRegistry } from 'prom-client'
import { createLogger, prepareDataDir, startServer } from './main.js'
import { serveMetrics } from './ops/metrics-server.js'

/** A serving certbound: one process, or a primary with its workers. */
export interface Serving {
  /** Stops accepting, drains in-flight requests (every worker), then resolves. */
  close(): Promise<void>
}

/** `server.workers` as a number (`auto` = the number of cores). */
export function workerCount(config: Config): number {
  const w = config.server.workers
  return w === 'auto' ? Math.max(1, availableParallelism()) : w
}

// A worker that dies this soon after it started is crash-looping: wait before the next one.
const QUICK_DEATH_MS = 5_000
const RESTART_DELAY_MS = 1_000

/**
 * `certbound serve`. With `server.workers` > 1 this process is the node:cluster primary: it
 * prepares data_dir once (so exactly one process initialises a new CA), forks the workers —
 * which all listen on the one socket and share the database — restarts a worker that dies,
 * and on close asks every worker to drain and waits for them. Everything a response depends
 * on lives in the database, so any worker answers any request the same.
 */
export async function serve(
  config: Config,
  logger: Logger = createLogger(config),
): Promise<Serving> {
  if (cluster.isWorker || workerCount(config) === 1) {
    const running = await startServer(config, { logger })
    return { close: () => running.close() }
  }
  await prepareDataDir(config, logger)
  return startPrimary(config, logger)
}

async function startPrimary(config: Config, logger: Logger): Promise<Serving> {
  // metrics.listen: the primary answers scrapes with the sum over its workers (IPC).
  const aggregator = config.metrics ? new AggregatorRegistry() : undefined
  const metrics =
    config.metrics && aggregator
      ? await serveMetrics(config.metrics, () => aggregator.clusterMetrics(), logger)
      : undefined
  const count = workerCount(config)
  let stopping = false
  const started = new Map<Worker, number>()
  const fork = () => started.set(cluster.fork(), Date.now())
  cluster.on('exit', (worker, code, signal) => {
    const since = started.get(worker) ?? 0
    started.delete(worker)
    if (stopping) return
    logger.error({ pid: worker.process.pid, code, signal }, 'worker died; starting another')
    setTimeout(fork, Date.now() - since < QUICK_DEATH_MS ? RESTART_DELAY_MS : 0)
  })
  for (let i = 0; i < count; i++) fork()
  logger.info({ workers: count }, 'certbound primary started its workers')
  const close = async () => {
    stopping = true
    const exits = [...started.keys()].map(
      (w) =>
        new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))),
    )
    // SIGTERM: each worker drains its connections as a single process would.
    for (const w of started.keys()) w.process.kill('SIGTERM')
    await Promise.all(exits)
    await metrics?.close()
  }
  // Ready once every worker listens (each logs its own "certbound serving").
  return new Promise((resolve) => {
    let listening = 0
    cluster.on('listening', () => {
      if (++listening === count) resolve({ close })
    })
  })
}
