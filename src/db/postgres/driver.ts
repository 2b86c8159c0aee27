import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { CAError } from '../../errors.js'
import type { DriverStats, SqlDriver, SqlExecutor, SqlValue } from '../driver.js'
import {
  isConnectionError,
  isPoolTimeout,
  mapPostgresError,
  RETRYABLE_SQLSTATES,
  sqlStateOf,
} from './errors.js'
import { placeholderCache } from './placeholders.js'

/** The few log calls the driver makes (a pino logger fits). */
export interface DriverLogger {
  warn(fields: object, message: string): void
  info(fields: object, message: string): void
}

export interface PostgresDriverOptions {
  /**
   * How often a transaction is run in all, when PostgreSQL aborts it for a serialization
   * failure or a deadlock, or the connection drops before COMMIT (nothing of it committed).
   */
  readonly maxAttempts?: number
  readonly logger?: DriverLogger
}

const OID = { bool: 16, int8: 20, numeric: 1700 } as const

function parseInt8(text: string): number | bigint {
  const n = Number(text)
  // Epoch milliseconds and counters fit; a value that does not stays exact rather than rounded.
  return Number.isSafeInteger(n) ? n : BigInt(text)
}

/**
 * Type parsers for this pool's clients only (node-postgres' global `types` stay untouched):
 * int8 (BIGINT columns, count(*)) and numeric (sum) as numbers, as SQLite returns them, and
 * booleans as 1/0, which is how both backends store them — so `SELECT x IS NULL AS f` reads
 * the same on either.
 */
export const TYPE_PARSERS: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (format === undefined || format === 'text') {
      if (oid === OID.int8) return parseInt8
      if (oid === OID.numeric) return Number
      if (oid === OID.bool) return (v: string) => (v === 't' ? 1 : 0)
    }
    return pg.types.getTypeParser(oid, format)
  }) as pg.CustomTypesConfig['getTypeParser'],
}

// node-postgres binds Buffers as bytea; a plain Uint8Array view becomes one (no copy).
function bind(params: readonly SqlValue[]): unknown[] {
  return params.map((p) =>
    p instanceof Uint8Array && !Buffer.isBuffer(p)
      ? Buffer.from(p.buffer, p.byteOffset, p.byteLength)
      : p,
  )
}

/** Jittered exponential backoff: 5 ms, 10 ms, 20 ms … up to 250 ms, each ×0.5–1.5. */
function backoff(attempt: number): Promise<void> {
  return sleep(Math.min(250, 5 * 2 ** (attempt - 1)) * (0.5 + Math.random()))
}

const isRetryable = (e: unknown) => RETRYABLE_SQLSTATES.has(sqlStateOf(e) ?? '')
const causeOf = (e: unknown) => (e instanceof CAError ? e.cause : e)

type Queryable = Pick<pg.PoolClient, 'query'>

/**
 * The PostgreSQL backend's driver: a pool of connections; each transaction runs on one of them
 * as `BEGIN ISOLATION LEVEL READ COMMITTED … COMMIT`. The repositories are written for that
 * level: single-use rows are spent by conditional updates (`… WHERE used_at IS NULL`, whose
 * row count says who won), and re-checks take row locks (`forUpdate` / `forShare`).
 */
export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres'
  readonly forUpdate = ' FOR UPDATE'
  readonly forShare = ' FOR SHARE'
  readonly stats: DriverStats = { busyRetries: 0 }
  readonly #pool: pg.Pool
  readonly #convert = placeholderCache()
  readonly #maxAttempts: number
  #closed = false

  constructor(config: pg.PoolConfig, options: PostgresDriverOptions = {}) {
    this.#maxAttempts = options.maxAttempts ?? 5
    this.#pool = new pg.Pool({ ...config, types: TYPE_PARSERS })
    // An idle connection that dies (server restart, failover) must not crash the process: the
    // pool drops it, and the next query opens a new one.
    this.#pool.on('error', (e) => {
      options.logger?.warn({ err: e.message }, 'database connection lost while idle')
    })
    // A checked-out connection that dies between two statements emits 'error' too; the next
    // statement on it fails (and is mapped), so the event itself needs no more than a listener.
    this.#pool.on('connect', (client) => client.on('error', () => {}))
  }

  #executor(client: Queryable, onFailure?: (e: unknown) => void): SqlExecutor {
    const query = async (sql: string, params: readonly SqlValue[]) => {
      try {
        return await client.query({ text: this.#convert(sql), values: bind(params) })
      } catch (e) {
        const mapped = mapPostgresError(e)
        onFailure?.(mapped)
        throw mapped
      }
    }
    return {
      all: async <T>(sql: string, params: readonly SqlValue[] = []) =>
        (await query(sql, params)).rows as T[],
      get: async <T>(sql: string, params: readonly SqlValue[] = []) =>
        (await query(sql, params)).rows[0] as T | undefined,
      run: async (sql: string, params: readonly SqlValue[] = []) =>
        (await query(sql, params)).rowCount ?? 0,
    }
  }

  /** A pooled connection; failing to get one is always safe to retry (nothing was sent). */
  async #connect(): Promise<pg.PoolClient> {
    for (let attempt = 1; ; attempt++) {
      if (this.#closed) throw new Error('the database is closed')
      try {
        return await this.#pool.connect()
      } catch (e) {
        const mapped = mapPostgresError(e)
        // A pool timeout has waited its whole budget already.
        if (!isConnectionError(e) || isPoolTimeout(e) || attempt >= this.#maxAttempts) throw mapped
        await backoff(attempt)
      }
    }
  }

  /** One statement outside a transaction (autocommit). */
  async #single<T>(f: (x: SqlExecutor) => Promise<T>, isRead: boolean): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.#connect()
      try {
        const value = await f(this.#executor(client))
        client.release()
        return value
      } catch (e) {
        const lost = isConnectionError(causeOf(e))
        client.release(lost)
        // A write whose connection dropped may have committed: only a read runs again then.
        const again = isRetryable(e) || (lost && isRead)
        if (!again) throw e
        if (attempt >= this.#maxAttempts) throw gaveUp(e, attempt)
        this.stats.busyRetries++
        await backoff(attempt)
      }
    }
  }

  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]> {
    return this.#single((x) => x.all<T>(sql, params), true)
  }

  get<T>(sql: string, params?: readonly SqlValue[]): Promise<T | undefined> {
    return this.#single((x) => x.get<T>(sql, params), true)
  }

  run(sql: string, params?: readonly SqlValue[]): Promise<number> {
    return this.#single((x) => x.run(sql, params), false)
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.#connect()
      let failure: unknown
      let committing = false
      try {
        await client.query('BEGIN ISOLATION LEVEL READ COMMITTED')
        const tx = this.#executor(client, (e) => {
          failure ??= e
        })
        const guarded: SqlExecutor = {
          all: (sql, params) => (failure ? abortedError(failure) : tx.all(sql, params)),
          get: (sql, params) => (failure ? abortedError(failure) : tx.get(sql, params)),
          run: (sql, params) => (failure ? abortedError(failure) : tx.run(sql, params)),
        }
        const value = await fn(guarded)
        // `fn` caught a failed statement and went on: PostgreSQL has aborted the transaction
        // already, and COMMIT would quietly roll it back.
        if (failure !== undefined) throw failure
        committing = true
        const result = await client.query('COMMIT')
        if (result.command !== 'COMMIT')
          throw new Error('the transaction was rolled back at COMMIT')
        client.release()
        return value
      } catch (e) {
        // A failure `fn` caught and went past is what decides whether to run again.
        const root = failure ?? e
        const lost = isConnectionError(causeOf(root))
        if (lost) client.release(true)
        else await rollback(client)
        if (lost && committing) {
          throw new CAError(
            'ERR_STORAGE_UNAVAILABLE',
            `the database connection was lost during COMMIT; the change may or may not have been made: ${(e as Error).message}`,
            { cause: causeOf(e) },
          )
        }
        // Nothing of this attempt committed: a serialization failure, a deadlock or a lost
        // connection may simply run again.
        // BEGIN and COMMIT run outside the executor: their errors are mapped here.
        if (!(isRetryable(root) || lost)) throw mapPostgresError(e)
        if (attempt >= this.#maxAttempts) throw gaveUp(root, attempt)
        this.stats.busyRetries++
        await backoff(attempt)
      }
    }
  }

  /** A connection of its own, for migrations and maintenance only (not for the repositories). */
  async withClient<T>(f: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#connect()
    try {
      const value = await f(client)
      client.release()
      return value
    } catch (e) {
      client.release(true)
      throw mapPostgresError(e)
    }
  }

  /** COMMIT returns once the commit record is flushed (synchronous_commit): nothing pending. */
  settled(): Promise<void> {
    return Promise.resolve()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#pool.end()
  }
}

async function rollback(client: pg.PoolClient): Promise<void> {
  try {
    await client.query('ROLLBACK')
    client.release()
  } catch (e) {
    client.release(e as Error)
  }
}

function abortedError(first: unknown): Promise<never> {
  return Promise.reject(
    new Error(
      'a statement failed earlier in this transaction, and PostgreSQL aborts a transaction at ' +
        'its first failed statement: write the SQL so it cannot fail (ON CONFLICT …), do not catch ' +
        `and go on (first failure: ${(first as Error).message})`,
      { cause: first },
    ),
  )
}

function gaveUp(e: unknown, attempts: number): CAError {
  return new CAError(
    'ERR_STORAGE_UNAVAILABLE',
    `${(e as Error).message} (gave up after ${attempts} attempts)`,
    { cause: causeOf(e) },
  )
}
