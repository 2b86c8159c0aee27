import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'

// The checkpointer's thread: its own connection to the database, one PASSIVE checkpoint per
// message. Plain CommonJS (eval), so it runs the same from the sources and from dist/; the
// better-sqlite3 it loads is the one this module resolves.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.module)
const db = new Database(workerData.file, { timeout: 0 })
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close()
    parentPort.close()
    return
  }
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)')
    parentPort.postMessage({ ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed })
  } catch (e) {
    // Another process's checkpoint holds the lock: that one does the work.
    if (String(e && e.code).startsWith('SQLITE_BUSY'))
      parentPort.postMessage({ ok: true, busy: 1, log: -1, checkpointed: -1 })
    else parentPort.postMessage({ ok: false, error: String(e && e.message) })
  }
})
`

/** When a checkpoint is due: after this many group commits, at most this often... */
const BATCHES = 16
const MIN_INTERVAL_MS = 100
/** ...and after any commit once this long has passed. */
const MAX_INTERVAL_MS = 2_000

type Reply =
  { ok: true; busy: number; log: number; checkpointed: number } | { ok: false; error: string }

/**
 * Moves SQLite's WAL checkpoints off the event loop. With `wal_autocheckpoint` (SQLite's
 * default, 1000 pages) the COMMIT that crosses the threshold copies the log into the database
 * and fsyncs it on the calling thread: a 3-20 ms stall of every request, several times a
 * second under load. The driver turns the automatic checkpoint off and asks this thread for a
 * PASSIVE checkpoint after a number of commits instead; it starts no write transaction while
 * one runs, so the checkpoint catches up with the log and the next write restarts it (the WAL
 * stays bounded), but TLS, parsing and signing go on meanwhile. A checkpoint's durability is
 * SQLite's own (the database file is synced before the log is reused); nothing acknowledged
 * depends on it (the WAL flush, WalSync, does that).
 */
export class WalCheckpointer {
  readonly #file: string
  readonly #onFailure: (error: Error) => void
  // Started at the first checkpoint: most short-lived stores (tests, CLI commands) never need it.
  #worker: Worker | undefined
  #batches = 0
  #last = Date.now()
  #running: Promise<void> | undefined
  #resolve: (() => void) | undefined
  #failed = false
  /** Checkpoints run, for tests and stats. */
  count = 0

  /** `onFailure`: the thread is gone (the driver turns SQLite's own checkpoints back on). */
  constructor(file: string, onFailure: (error: Error) => void) {
    this.#file = file
    this.#onFailure = onFailure
  }

  #spawn(): Worker {
    const module = createRequire(import.meta.url).resolve('better-sqlite3')
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { module, file: this.#file },
    })
    // Kept alive only while a checkpoint or the close is awaited (#start, close): an idle
    // checkpointer never holds a process open, a pending one must, or its promise never settles.
    worker.unref()
    const fail = (e: Error) => {
      if (this.#failed) return
      this.#failed = true
      this.#done()
      this.#onFailure(e)
    }
    worker.on('message', (r: Reply) => {
      if (!r.ok) return fail(new Error(`WAL checkpoint failed: ${r.error}`))
      this.count++
      this.#done()
    })
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`WAL checkpointer exited (${code})`)))
    return worker
  }

  /** The checkpoint in flight, if any: write transactions wait for it. */
  get running(): Promise<void> | undefined {
    return this.#running
  }

  /** Told after each group commit: starts a checkpoint when one is due. */
  committed(): void {
    this.#batches++
    if (this.#failed || this.#running) return
    const since = Date.now() - this.#last
    if ((this.#batches >= BATCHES && since >= MIN_INTERVAL_MS) || since >= MAX_INTERVAL_MS)
      this.#start()
  }

  #start(): void {
    this.#batches = 0
    this.#running = new Promise((resolve) => (this.#resolve = resolve))
    const worker = (this.#worker ??= this.#spawn())
    worker.ref()
    worker.postMessage('checkpoint')
  }

  #done(): void {
    this.#last = Date.now()
    this.#worker?.unref()
    const resolve = this.#resolve
    this.#running = undefined
    this.#resolve = undefined
    resolve?.()
  }

  async close(): Promise<void> {
    await this.#running
    const worker = this.#worker
    if (this.#failed || worker === undefined) return void (this.#failed = true)
    this.#failed = true
    const exited = new Promise((resolve) => worker.once('exit', resolve))
    worker.ref()
    worker.postMessage('close')
    await exited
  }
}
