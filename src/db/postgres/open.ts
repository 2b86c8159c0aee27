import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ConnectionOptions } from 'node:tls'
import type pg from 'pg'
import { CAError } from '../../errors.js'
import type { Migration } from '../sqlite/migrate.js'
import { PostgresDriver, type DriverLogger } from './driver.js'
import { isConnectionError, mapPostgresError } from './errors.js'
import { migratePostgres } from './migrate.js'
import { describeTarget, parsePostgresUrl, type PostgresUrl } from './url.js'

export interface OpenPostgresOptions {
  /** `database.url`. */
  readonly url: string
  /** `database.password_file` (absolute): used when the URL holds no password. */
  readonly passwordFile?: string | undefined
  /** `database.pool_size`: connections this process keeps at most. */
  readonly poolSize?: number | undefined
  /**
   * `database.busy_timeout`: how long a statement waits for a free connection or a row lock
   * before failing with ERR_STORAGE_UNAVAILABLE (HTTP 503).
   */
  readonly busyTimeoutMs?: number | undefined
  /** `database.startup_timeout`: how long opening waits for the server to accept connections. */
  readonly startupTimeoutMs?: number | undefined
  readonly logger?: DriverLogger | undefined
  /** Brings the schema up to date on open (default); false for tools that only read. */
  readonly migrate?: boolean | undefined
  readonly migrations?: readonly Migration[] | undefined
  /** Where PGPASSWORD is read from (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

function readSecret(file: string, what: string): string {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (e) {
    throw new CAError('ERR_CONFIG_INVALID', `cannot read ${what} ${file}: ${(e as Error).message}`)
  }
  const secret = text.replace(/\r?\n$/, '')
  if (!secret) throw new CAError('ERR_CONFIG_INVALID', `${what} ${file} is empty`)
  return secret
}

function readTlsFile(file: string, what: string): Buffer {
  try {
    return readFileSync(file)
  } catch (e) {
    throw new CAError('ERR_CONFIG_INVALID', `cannot read ${what} ${file}: ${(e as Error).message}`)
  }
}

/** TLS to the database as libpq's sslmodes mean it. */
export function tlsOptions(u: PostgresUrl): ConnectionOptions | false {
  if (u.sslMode === 'disable') return false
  const ca = u.sslRootCert ? readTlsFile(u.sslRootCert, 'database.url sslrootcert') : undefined
  const client =
    u.sslCert && u.sslKey
      ? {
          cert: readTlsFile(u.sslCert, 'database.url sslcert'),
          key: readTlsFile(u.sslKey, 'database.url sslkey'),
        }
      : {}
  // libpq: `require` with a root certificate verifies the chain, as verify-ca does.
  const verifyChain = u.sslMode !== 'require' || ca !== undefined
  const opts: ConnectionOptions = { ...client, rejectUnauthorized: verifyChain }
  if (ca) opts.ca = ca
  if (u.sslMode !== 'verify-full') opts.checkServerIdentity = () => undefined
  else if (!u.host.startsWith('/')) opts.servername = u.host
  return opts
}

/** The pool settings for a URL; the password comes from the URL, the file or PGPASSWORD. */
export function poolConfig(options: OpenPostgresOptions): pg.PoolConfig {
  const u = parsePostgresUrl(options.url)
  if (u.password !== undefined && options.passwordFile !== undefined) {
    throw new CAError(
      'ERR_CONFIG_INVALID',
      'database.password_file is set but database.url has a password too: keep one',
    )
  }
  const env = options.env ?? process.env
  const password =
    u.password ??
    (options.passwordFile !== undefined
      ? readSecret(options.passwordFile, 'database.password_file')
      : env.PGPASSWORD)
  const busy = options.busyTimeoutMs ?? 5000
  return {
    host: u.host,
    port: u.port,
    database: u.database,
    user: u.user ?? env.PGUSER,
    // A function: node-postgres would otherwise read PGPASSWORD itself when this is undefined.
    password: () => password ?? '',
    ssl: tlsOptions(u),
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: u.connectTimeoutMs ?? busy,
    lock_timeout: busy,
    // A transaction runs statements only; one left open (a stuck process) must not hold row
    // locks for ever.
    idle_in_transaction_session_timeout: 60_000,
    application_name: u.applicationName ?? 'certbound',
    keepAlive: true,
  }
}

/**
 * Waits for the server to accept connections (a replica started before its database, a
 * failover in progress), saying so in the log, with backoff up to `timeoutMs`. A refusal
 * that waiting cannot cure (wrong password, no such database) fails at once.
 */
export async function waitForDatabase(
  driver: PostgresDriver,
  target: string,
  timeoutMs: number,
  logger: DriverLogger | undefined,
): Promise<void> {
  const started = Date.now()
  let delay = 100
  let lastLog = 0
  for (;;) {
    try {
      await driver.withClient((c) => c.query('SELECT 1'))
      if (lastLog) logger?.info({ database: target }, 'the database is up')
      return
    } catch (e) {
      const cause = e instanceof CAError ? e.cause : e
      if (!isConnectionError(cause)) {
        throw new Error(`cannot use the database ${target}: ${(e as Error).message}`, {
          cause: e,
        })
      }
      const waited = Date.now() - started
      if (waited + delay > timeoutMs) {
        throw new CAError(
          'ERR_STORAGE_UNAVAILABLE',
          `the database ${target} did not accept connections within ${Math.round(timeoutMs / 1000)}s (database.startup_timeout): ${(cause as Error).message}`,
          { cause },
        )
      }
      if (!lastLog || Date.now() - lastLog >= 10_000) {
        lastLog = Date.now()
        logger?.warn(
          { database: target, err: (cause as Error).message, waited_ms: waited },
          'waiting for the database',
        )
      }
      await sleep(delay * (0.5 + Math.random()))
      delay = Math.min(delay * 2, 5000)
    }
  }
}

/**
 * Opens the PostgreSQL backend: a pool, the wait for a server that is not up yet, and the
 * migrations (once, however many replicas start together).
 */
export async function openPostgresDriver(options: OpenPostgresOptions): Promise<PostgresDriver> {
  const config = poolConfig(options)
  const target = describeTarget(parsePostgresUrl(options.url))
  // The wait below retries by itself; the driver's own reconnection tries stay few.
  const driver = new PostgresDriver(config, { logger: options.logger })
  try {
    await waitForDatabase(driver, target, options.startupTimeoutMs ?? 60_000, options.logger)
    if (options.migrate !== false) {
      const applied = await migratePostgres(driver, options.migrations)
      if (applied.length) {
        options.logger?.info({ database: target, versions: applied }, 'database schema migrated')
      }
    }
    return driver
  } catch (e) {
    await driver.close()
    throw mapPostgresError(e)
  }
}
