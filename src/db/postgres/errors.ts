import { CAError } from '../../errors.js'

/** SQLSTATEs after which the whole transaction may simply run again (nothing of it committed). */
export const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
])

// Socket-level failures: the server is down, restarting, unreachable or failing over.
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENOENT', // a unix socket that is not there (yet)
])

// node-postgres and its pool report these without a code.
const DRIVER_MESSAGES = [
  /^timeout exceeded when trying to connect/,
  /^Connection terminated/,
  /^Client has encountered a connection error/,
  /^Query read timeout/,
]

function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** The SQLSTATE behind an error the driver raised or mapped, if PostgreSQL sent one. */
export function sqlStateOf(e: unknown): string | undefined {
  return sqlState(e) ?? (e instanceof CAError ? sqlState(e.cause) : undefined)
}

/**
 * Waited `connectionTimeoutMillis` for a connection: none free in the pool, or the server did
 * not answer (a host that drops packets). The time budget is spent: not worth a quick retry.
 */
export function isPoolTimeout(e: unknown): boolean {
  const message = (e as Error | null)?.message
  return (
    typeof message === 'string' &&
    /^(timeout exceeded when trying to connect|Connection terminated due to connection timeout)/.test(
      message,
    )
  )
}

/** True when the error means "could not reach the server", not "the server said no". */
export function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true
  const state = sqlState(e)
  if (state) return state.startsWith('08') || /^57P0[123]$/.test(state)
  const message = (e as Error | null)?.message
  return typeof message === 'string' && DRIVER_MESSAGES.some((re) => re.test(message))
}

/**
 * PostgreSQL's errors as the storage codes every backend shares. Anything else (a syntax
 * error, a check constraint, a foreign key) is a bug or a schema mismatch and passes through.
 */
export function mapPostgresError(e: unknown): unknown {
  if (e instanceof CAError) return e
  const message = (e as Error | null)?.message ?? String(e)
  const state = sqlState(e)
  if (state === '23505') return new CAError('ERR_STORAGE_CONFLICT', message, { cause: e })
  if (isConnectionError(e)) {
    return new CAError('ERR_STORAGE_UNAVAILABLE', `the database is unreachable: ${message}`, {
      cause: e,
    })
  }
  if (state === undefined) return e
  if (
    RETRYABLE_SQLSTATES.has(state) ||
    state === '53300' || // too_many_connections: transient, unlike the rest of class 53
    state === '55P03' || // lock_not_available: waited lock_timeout (database.busy_timeout)
    state === '57014' || // query_canceled: statement_timeout, or cancelled at shutdown
    state === '25006' // read_only_sql_transaction: a standby after failover
  ) {
    return new CAError('ERR_STORAGE_UNAVAILABLE', `the database is busy: ${message}`, { cause: e })
  }
  if (state === '22021' || state === '22P05') {
    // character_not_in_repertoire / untranslatable_character: text PostgreSQL cannot hold (a NUL
    // byte) reached a query. SQLite stores or compares it; here it is the request that is bad.
    return new CAError(
      'ERR_BAD_REQUEST',
      'the request holds a character the database cannot store (a NUL byte?)',
      { cause: e },
    )
  }
  if (state.startsWith('53')) {
    // 53100 disk_full, 53200 out_of_memory, 53400 configuration_limit_exceeded
    return new CAError('ERR_STORAGE_FULL', `the database cannot take the write: ${message}`, {
      cause: e,
    })
  }
  return e
}
