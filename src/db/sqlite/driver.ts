import { setTimeout as sleep } from 'node:timers/promises'
import Database from 'better-sqlite3'
import { CAError } from '../../errors.js'
import type { DriverStats, SqlDriver, SqlExecutor, SqlValue } from '../driver.js'
import { WalCheckpointer } from './wal-checkpoint.js'
import { WalSync } from './wal-sync.js'

export interface SqliteDriverOptions {
  /** FULL by default: an acknowledged change must survive a power loss. */
  readonly synchronous?: 'FULL' | 'NORMAL'
  /** How long a write waits for another process's write lock before answering 503. */
  readonly busyTimeoutMs?: number
  /** The WAL flush of FULL (default: WalSync's fdatasync); tests hold it to watch the order. */
  readonly walSync?: (file: string) => Pick<WalSync, 'sync' | 'close'>
  /** WAL checkpoints on a worker thread (default) rather than inside a COMMIT on this one. */
  readonly checkpointThread?: boolean
}

interface Pending {
  readonly fn: (tx: SqlExecutor) => Promise<unknown>
  readonly resolve: (value: unknown) => void
  readonly reject: (reason: unknown) => void
  /** When it was queued: busyTimeoutMs counts from here. */
  readonly queuedAt: number
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown }

const SETTLED = Promise.resolve()

// A batch is bounded so one burst cannot hold the write lock for long.
const MAX_BATCH = 256

// Page caches, per connection (KiB). The writer serves every read between batches too.
const WRITER_CACHE_KIB = 64 * 1024
const READER_CACHE_KIB = 16 * 1024

type Statement = Database.Statement<unknown[], unknown>

/** A prepared statement, and for one that returns rows, its row builder. */
interface Prepared {
  readonly statement: Statement
  readonly row: ((values: unknown[]) => unknown) | undefined
}

/**
 * Rows as objects of one shape per statement, built from better-sqlite3's raw arrays by an
 * object literal compiled once for the statement's columns: better-sqlite3's own objects are
 * built property by property from C++ (v8::Object::Set), ~10% of an introspection's main
 * thread, against ~40% less per row this way. A repeated column name keeps its last value, as
 * better-sqlite3 does. The names come from our own SQL; JSON.stringify quotes them.
 */
function rowBuilder(statement: Statement): (values: unknown[]) => unknown {
  const fields = statement.columns().map((c, i) => `${JSON.stringify(c.name)}: v[${i}]`)
  return new Function('v', `return { ${fields.join(', ')} }`) as (values: unknown[]) => unknown
}

/** Prepared statements by SQL text: each statement is compiled once per connection. */
function statementCache(db: Database.Database): (sql: string) => Prepared {
  const cache = new Map<string, Prepared>()
  return (sql) => {
    let prepared = cache.get(sql)
    if (!prepared) {
      const statement = db.prepare(sql)
      prepared = statement.reader
        ? { statement: statement.raw(true), row: rowBuilder(statement) }
        : { statement, row: undefined }
      cache.set(sql, prepared)
    }
    return prepared
  }
}

// better-sqlite3 binds Buffers, not plain Uint8Arrays, as BLOBs.
function bind(params: readonly SqlValue[]): unknown[] {
  return params.map((p) =>
    p instanceof Uint8Array && !Buffer.isBuffer(p)
      ? Buffer.from(p.buffer, p.byteOffset, p.length)
      : p,
  )
}

/** SQLite's error codes as the storage codes every backend shares. */
export function mapSqliteError(e: unknown): unknown {
  const code = (e as { code?: unknown }).code
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return e
  const message = (e as Error).message
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
    return new CAError('ERR_STORAGE_CONFLICT', message, { cause: e })
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
    return new CAError('ERR_STORAGE_UNAVAILABLE', `the database is busy: ${message}`, { cause: e })
  if (code === 'SQLITE_FULL' || code === 'SQLITE_IOERR_WRITE')
    return new CAError('ERR_STORAGE_FULL', `the database cannot grow: ${message}`, { cause: e })
  return e
}

function executor(prepare: (sql: string) => Prepared): SqlExecutor {
  const guard = <T>(f: () => T): Promise<T> => {
    try {
      return Promise.resolve(f())
    } catch (e) {
      return Promise.reject(mapSqliteError(e))
    }
  }
  return {
    all: <T>(sql: string, params: readonly SqlValue[] = []) =>
      guard(() => {
        const { statement, row } = prepare(sql)
        const rows = statement.all(...bind(params)) as unknown[][]
        return (row ? rows.map(row) : rows) as T[]
      }),
    get: <T>(sql: string, params: readonly SqlValue[] = []) =>
      guard(() => {
        const { statement, row } = prepare(sql)
        const values = statement.get(...bind(params)) as unknown[] | undefined
        return (values === undefined || !row ? values : row(values)) as T | undefined
      }),
    run: (sql: string, params: readonly SqlValue[] = []) =>
      guard(() => prepare(sql).statement.run(...bind(params)).changes),
  }
}

/**
 * The SQLite backend's driver: one connection writes, one reads (WAL lets readers see the last
 * commit while a write is open, and never an uncommitted one). Write transactions that arrive
 * together share one `BEGIN IMMEDIATE … COMMIT` (group commit), each in its own savepoint, and
 * every caller is answered only after that commit is durable: with `synchronous` FULL (the
 * default) the driver flushes the WAL itself after COMMIT, on the thread pool (see WalSync),
 * so one fsync serves the whole batch and the event loop keeps serving requests meanwhile.
 * Another process holding the write lock is waited for asynchronously up to `busyTimeoutMs`,
 * then the write fails with ERR_STORAGE_UNAVAILABLE (HTTP 503).
 */
export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite'
  readonly forUpdate = ''
  readonly forShare = ''
  readonly stats: DriverStats = { busyRetries: 0 }
  readonly #writer: Database.Database
  readonly #reader: Database.Database
  readonly #write: SqlExecutor
  readonly #read: SqlExecutor
  readonly #busyTimeoutMs: number
  /** FULL: the WAL flush after each group commit; NORMAL: none (SQLite's own meaning). */
  readonly #wal: Pick<WalSync, 'sync' | 'close'> | undefined
  /** Checkpoints off the event loop (wal-checkpoint.ts); undefined: SQLite's automatic ones. */
  #checkpoints: WalCheckpointer | undefined
  #queue: Pending[] = []
  #flushing = false
  /** The WAL flush in flight: commits before it are visible but not yet durable. */
  #syncing: Promise<void> | undefined
  #closed = false
  #dataVersion: Statement | undefined

  constructor(file: string, options: SqliteDriverOptions = {}) {
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 5000
    // timeout 0: a locked database answers SQLITE_BUSY at once and we retry without blocking.
    this.#writer = new Database(file, { timeout: 0 })
    const wal = this.#writer.pragma('journal_mode = WAL', { simple: true }) === 'wal'
    if (wal && options.checkpointThread !== false) {
      this.#writer.pragma('wal_autocheckpoint = 0')
      this.#checkpoints = new WalCheckpointer(file, () => {
        // The thread is gone: SQLite's own checkpoints again, so the log stays bounded.
        this.#checkpoints = undefined
        if (this.#writer.open) this.#writer.pragma('wal_autocheckpoint = 1000')
      })
    }
    // NORMAL in WAL mode: COMMIT writes the frames without an fsync, checkpoints are synced.
    // FULL's per-commit fsync is done by #flush, off the event loop (WalSync).
    this.#writer.pragma('synchronous = NORMAL')
    const walSync = options.walSync ?? ((f: string) => new WalSync(f))
    this.#wal = (options.synchronous ?? 'FULL') === 'FULL' ? walSync(file) : undefined
    this.#writer.pragma('foreign_keys = ON')
    // SQLite's default page cache is 2 MB: on a database of a million certificates and token
    // families every insert into a random-keyed index (serials, thumbprints, key hashes) then
    // reads its leaf page from the OS again. The cache fills only with pages actually used.
    this.#writer.pragma(`cache_size = -${WRITER_CACHE_KIB}`)
    // Each transaction of a group commit runs in a savepoint, whose journal (the original of
    // every page it changes) is a temporary file by default: a write() per page, ~9% of a token
    // grant's main-thread time. In memory it is a copy; it lives only until the savepoint ends.
    // (Temporary b-trees of sorts live there too: the server's queries read in index order.)
    this.#writer.pragma('temp_store = MEMORY')
    this.#reader = new Database(file, { timeout: this.#busyTimeoutMs })
    this.#reader.pragma('query_only = ON')
    this.#reader.pragma(`cache_size = -${READER_CACHE_KIB}`)
    this.#write = executor(statementCache(this.#writer))
    this.#read = executor(statementCache(this.#reader))
  }

  /** WAL checkpoints run by the checkpoint thread (tests). */
  get checkpoints(): number {
    return this.#checkpoints?.count ?? 0
  }

  /** The raw write connection, for migrations and the online backup only. */
  get connection(): Database.Database {
    return this.#writer
  }

  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.#reads().all<T>(sql, params)
  }

  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.#reads().get<T>(sql, params)
  }

  /**
   * Reads outside a transaction see committed state only. Between batches that is the write
   * connection itself, whose page cache stays warm: SQLite drops a connection's whole cache
   * when another connection committed since its last read, so the read connection starts cold
   * after every group commit. While a batch is open (its statements run over microtasks, and a
   * read may land between them), reads go to the read connection, which never sees it.
   */
  #reads(): SqlExecutor {
    return this.#writer.inTransaction ? this.#read : this.#write
  }

  externalChanges(): number {
    // Per connection: it moves only with commits of other connections (our reader never
    // writes), and cannot move while our own write transaction holds the lock. Prepared once:
    // `pragma()` compiles its statement on every call.
    this.#dataVersion ??= this.#writer.prepare('PRAGMA data_version').pluck()
    return this.#dataVersion.get() as number
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<number> {
    return this.transaction((tx) => tx.run(sql, params))
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('the database is closed'))
    return new Promise<T>((resolve, reject) => {
      const queuedAt = Date.now()
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, queuedAt })
      if (!this.#flushing) {
        this.#flushing = true
        // setImmediate, not a microtask: requests whose I/O completed in this loop turn join.
        setImmediate(() => void this.#flush())
      }
    })
  }

  /**
   * Resolves when every transaction this driver committed is durable. A reader may see a
   * commit while its WAL flush is still in flight; a response that depends on what it read
   * waits for this first (the HTTP layer does so for every response).
   */
  settled(): Promise<void> {
    return this.#syncing ?? SETTLED
  }

  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        // No write while a checkpoint runs: it catches up with the log, which the next write
        // then restarts from its beginning (meanwhile the event loop serves everything else).
        const checkpoint = this.#checkpoints?.running
        if (checkpoint) await checkpoint
        if (!(await this.#begin())) continue
        // Taken once the lock is ours: what arrived while another process held it joins too.
        const batch = this.#queue.splice(0, MAX_BATCH)
        const outcomes = this.#runBatch(batch)
        const committed = await outcomes
        if (committed === undefined) continue
        if (this.#wal && committed.some((o) => o.ok)) {
          try {
            await (this.#syncing = this.#wal.sync())
          } catch (e) {
            const error = new CAError(
              'ERR_STORAGE_UNAVAILABLE',
              `the database could not flush its log: ${(e as Error).message}`,
              { cause: e },
            )
            for (const p of batch) p.reject(error)
            continue
          } finally {
            this.#syncing = undefined
          }
        }
        batch.forEach((p, i) => {
          const o = committed[i]!
          if (o.ok) p.resolve(o.value)
          else p.reject(o.error)
        })
        this.#checkpoints?.committed()
      }
    } finally {
      this.#flushing = false
    }
  }

  /**
   * Takes the write lock, waiting for another process that holds it: first by yielding to the
   * event loop (its transaction is short, there is no fsync inside it), then by sleeping from
   * 1 ms up to 20 ms. False when the oldest waiters passed busyTimeoutMs: they were refused.
   */
  async #begin(): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        this.#writer.exec('BEGIN IMMEDIATE')
        return true
      } catch (e) {
        const mapped = mapSqliteError(e)
        const busy = mapped instanceof CAError && mapped.code === 'ERR_STORAGE_UNAVAILABLE'
        const now = Date.now()
        const expired = this.#queue.filter((p) => !busy || now - p.queuedAt >= this.#busyTimeoutMs)
        if (expired.length > 0) {
          this.#queue = this.#queue.filter((p) => !expired.includes(p))
          for (const p of expired) p.reject(mapped)
          return false
        }
        this.stats.busyRetries++
        if (attempt < 3) await new Promise((r) => setImmediate(r))
        else await sleep(Math.min(20, attempt - 2) * (0.5 + Math.random()))
      }
    }
  }

  /** Runs a batch inside the open transaction and commits it; undefined: every caller was told. */
  async #runBatch(batch: Pending[]): Promise<Outcome[] | undefined> {
    const outcomes: Outcome[] = []
    const single = batch.length === 1
    for (const p of batch) {
      if (!single) this.#writer.exec('SAVEPOINT tx')
      try {
        const value = await p.fn(this.#write)
        if (!single) this.#writer.exec('RELEASE tx')
        outcomes.push({ ok: true, value })
      } catch (error) {
        const mapped = mapSqliteError(error)
        // Some errors (SQLITE_FULL, I/O) make SQLite roll back the whole transaction itself:
        // then every write of the batch is gone, and every caller must hear so.
        if (!this.#writer.inTransaction) {
          for (const q of batch) q.reject(mapped)
          return undefined
        }
        if (!single) this.#writer.exec('ROLLBACK TO tx; RELEASE tx')
        outcomes.push({ ok: false, error: mapped })
      }
    }
    const failedAll = single && !outcomes[0]!.ok
    try {
      this.#writer.exec(failedAll ? 'ROLLBACK' : 'COMMIT')
    } catch (e) {
      if (this.#writer.inTransaction) this.#writer.exec('ROLLBACK')
      const error = mapSqliteError(e)
      for (const p of batch) p.reject(error)
      return undefined
    }
    return outcomes
  }

  async close(): Promise<void> {
    this.#closed = true
    while (this.#flushing) await sleep(1)
    await this.#checkpoints?.close()
    await this.#wal?.close()
    if (this.#reader.open) this.#reader.close()
    if (this.#writer.open) this.#writer.close()
  }
}
