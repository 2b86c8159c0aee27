/**
 * `database.url` (libpq's URI form, `postgres://user:password@host:port/dbname?sslmode=…`) read
 * into explicit connection settings. One parser for the config check and the driver, so a URL
 * the config accepts is the URL the driver connects with. Pure: it reads no file (the TLS
 * files are read when connecting) and its messages never repeat the URL, which may hold a
 * password.
 */

/**
 * libpq's sslmodes that certbound honours. `prefer` and `allow` are refused: they fall back to
 * plaintext without saying so, and a CA's database traffic carries its audit trail.
 */
export type SslMode = 'disable' | 'require' | 'verify-ca' | 'verify-full'

export interface PostgresUrl {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string | undefined
  /** Percent-decoded; undefined when the URL has none. */
  readonly password: string | undefined
  readonly sslMode: SslMode
  readonly sslRootCert: string | undefined
  readonly sslCert: string | undefined
  readonly sslKey: string | undefined
  readonly applicationName: string | undefined
  readonly connectTimeoutMs: number | undefined
}

const SSL_MODES: readonly string[] = ['disable', 'require', 'verify-ca', 'verify-full']
const KNOWN_PARAMS = new Set([
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'host',
  'port',
  'user',
  'password',
  'dbname',
  'application_name',
  'connect_timeout',
])

/** Why `text` is not a usable PostgreSQL URL (undefined: it is). */
export function postgresUrlProblem(text: string): string | undefined {
  try {
    parsePostgresUrl(text)
    return undefined
  } catch (e) {
    return (e as Error).message
  }
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    throw new TypeError(`the ${what} is not valid percent-encoding`)
  }
}

/** Parses a `postgres://` or `postgresql://` URL; throws a TypeError naming the problem. */
export function parsePostgresUrl(text: string): PostgresUrl {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new TypeError(
      'must be a URL like postgres://user@host:5432/certbound (a port of 1-65535; ' +
        'percent-encode @ : / ? # in the user and password)',
    )
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new TypeError('must start with postgres:// or postgresql://')
  }
  if (url.hash) throw new TypeError('must not have a #fragment')
  const q = url.searchParams
  for (const key of q.keys()) {
    if (!KNOWN_PARAMS.has(key)) {
      throw new TypeError(
        `unknown parameter "${key}" (known: ${[...KNOWN_PARAMS].sort().join(', ')})`,
      )
    }
  }
  // The query form (?host=/run/postgresql for a unix socket, ?user=…) wins, as in libpq.
  const host = q.get('host') ?? decode(url.hostname, 'host').replace(/^\[(.*)\]$/, '$1')
  if (!host) throw new TypeError('must name a host (postgres://HOST/…, or ?host=/socket/dir)')
  const portText = q.get('port') ?? (url.port || '5432')
  const port = Number(portText)
  if (!/^[0-9]{1,5}$/.test(portText) || port < 1 || port > 65535) {
    throw new TypeError('the port must be 1-65535')
  }
  const path = url.pathname.replace(/^\//, '')
  if (path.includes('/')) throw new TypeError('the database name must be one path segment')
  const database = q.get('dbname') ?? decode(path, 'database name')
  if (!database) throw new TypeError('must name the database (postgres://host/DBNAME)')
  const user = q.get('user') ?? (url.username ? decode(url.username, 'user') : undefined)
  const password =
    q.get('password') ?? (url.password ? decode(url.password, 'password') : undefined)
  const mode = q.get('sslmode') ?? 'disable'
  if (!SSL_MODES.includes(mode)) {
    throw new TypeError(
      `sslmode=${mode} is not supported: use disable, require, verify-ca or verify-full ` +
        '(prefer and allow fall back to plaintext silently)',
    )
  }
  const sslMode = mode as SslMode
  const file = (key: string) => {
    const value = q.get(key)
    if (value === null) return undefined
    if (!value) throw new TypeError(`${key} must be a file path`)
    if (sslMode === 'disable') throw new TypeError(`${key} needs sslmode=require or stronger`)
    return value
  }
  const sslRootCert = file('sslrootcert')
  const sslCert = file('sslcert')
  const sslKey = file('sslkey')
  if ((sslCert === undefined) !== (sslKey === undefined)) {
    throw new TypeError('sslcert and sslkey go together (a client certificate and its key)')
  }
  const timeout = q.get('connect_timeout')
  if (timeout !== null && !/^[0-9]{1,6}$/.test(timeout)) {
    throw new TypeError('connect_timeout must be a whole number of seconds')
  }
  return {
    host,
    port,
    database,
    user,
    password,
    sslMode,
    sslRootCert,
    sslCert,
    sslKey,
    applicationName: q.get('application_name') ?? undefined,
    connectTimeoutMs: timeout === null || timeout === '0' ? undefined : Number(timeout) * 1000,
  }
}

/** host:port/database, for log lines and errors: never the user's password. */
export function describeTarget(u: PostgresUrl): string {
  const host = u.host.includes(':') ? `[${u.host}]` : u.host
  return u.host.startsWith('/')
    ? `${u.host} (socket)/${u.database}`
    : `${host}:${u.port}/${u.database}`
}
