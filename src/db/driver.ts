/**
 * The SQL driver seam under the repositories. The repositories in `src/db/sql/` hold every
 * query once, in portable SQL (positional `?` placeholders, no engine-specific functions);
 * each backend (`src/db/sqlite/`, `src/db/postgres/`) implements this interface: how a
 * statement runs, how a write transaction is taken, retried and committed, and how engine
 * errors become the storage error codes below.
 */

/** A value bound to a placeholder or read from a column. Booleans are stored as 0/1. */
export type SqlValue = string | number | bigint | null | Uint8Array

/** Runs statements. Inside a transaction every call sees that transaction's own writes. */
export interface SqlExecutor {
  /** All rows of a query. */
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>
  /** The first row of a query, or undefined. */
  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined>
  /** Runs a statement and returns the number of rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>
}

export type Dialect = 'sqlite' | 'postgres'

/** Counters a backend keeps for metrics (read at scrape time, never reset). */
export interface DriverStats {
  /**
   * How often a write waited for another writer and tried again: SQLite's busy waits for the
   * write lock, PostgreSQL's re-runs after a serialization failure, deadlock or lost connection.
   */
  busyRetries: number
}

export interface SqlDriver extends SqlExecutor {
  readonly dialect: Dialect
  /**
   * Runs `fn` as one write transaction and commits it; resolves only after the commit is
   * durable. `fn` must do nothing but statements on `tx` (no other I/O, no timers): a backend
   * may run it again after a serialization failure (PostgreSQL), or commit it together with
   * other transactions that arrived at the same moment (SQLite group commit, each in its own
   * savepoint so one failure does not undo another). Reads outside a transaction (the
   * driver's own `get`/`all`) see committed state only.
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>
  /**
   * Row-lock suffixes for a SELECT inside a transaction: ` FOR UPDATE` / ` FOR SHARE` where the
   * engine has row locks (PostgreSQL), empty for SQLite, whose write transaction already holds
   * the whole database. A re-check that a concurrent change must not slip past (certificate
   * still valid, entry still enabled) takes the share lock, so the change waits for our commit
   * and then sees our rows.
   */
  readonly forUpdate: string
  readonly forShare: string
  readonly stats: DriverStats
  /**
   * Resolves once every transaction this driver committed is durable. A backend may let
   * readers see a commit before its log flush completes (SQLite here: the WAL is flushed after
   * COMMIT, off the event loop); a response built from reads alone waits for this.
   */
  settled(): Promise<void>
  /**
   * A value that changes whenever another connection or process committed since it was last
   * read (SQLite's `data_version`), for caches of rarely changed rows: equal values mean
   * nothing but this driver's own transactions wrote in between. Undefined where the backend
   * cannot tell cheaply (PostgreSQL): callers then read.
   */
  externalChanges?(): number
  close(): Promise<void>
}

/**
 * Engine errors leave a backend only as a CAError with one of the storage codes of
 * src/errors.ts: ERR_STORAGE_CONFLICT (a unique or primary-key constraint refused the write),
 * ERR_STORAGE_UNAVAILABLE (busy beyond the configured wait, unreachable, failing over: retry
 * later) and ERR_STORAGE_FULL (no space for the write).
 */
