import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { configFromObject, loadConfig } from '../../src/config/load.js'
import { parsePostgresUrl } from '../../src/db/postgres/url.js'
import { CAError } from '../../src/errors.js'

const root = mkdtempSync(join(tmpdir(), 'certbound-dbconfig-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const SECRET = 'pa55-w0rd-s3cret'

/** The ERR_CONFIG_INVALID message for `database`, which must not repeat the password. */
function refusal(database: Record<string, unknown>): string {
  let error: unknown
  try {
    configFromObject({ database })
  } catch (e) {
    error = e
  }
  expect(error, `accepted: ${JSON.stringify(database)}`).toBeInstanceOf(CAError)
  expect((error as CAError).code).toBe('ERR_CONFIG_INVALID')
  const message = (error as CAError).message
  expect(message).not.toContain(SECRET)
  return message
}

describe('database.url and the PostgreSQL settings', () => {
  it('absent: SQLite, with the PostgreSQL settings at their defaults', () => {
    const c = configFromObject({})
    expect(c.database).toEqual({
      url: undefined,
      passwordFile: undefined,
      poolSize: 10,
      startupTimeoutMs: 60_000,
      synchronous: 'FULL',
      busyTimeoutMs: 5000,
    })
  })

  it('a postgres:// URL with TLS settings is kept as written', () => {
    const url =
      'postgres://certbound@db.example.org:6432/certbound?sslmode=verify-full&sslrootcert=/etc/ca.pem'
    const c = configFromObject({ database: { url, pool_size: 25, startup_timeout: '2m' } })
    expect(c.database).toMatchObject({ url, poolSize: 25, startupTimeoutMs: 120_000 })
    expect(parsePostgresUrl(url)).toMatchObject({
      host: 'db.example.org',
      port: 6432,
      database: 'certbound',
      user: 'certbound',
      password: undefined,
      sslMode: 'verify-full',
      sslRootCert: '/etc/ca.pem',
    })
  })

  it('reads user, password, host and database percent-decoded; ?host= names a socket', () => {
    const u = parsePostgresUrl(
      `postgresql://ce%40rt:${encodeURIComponent('p@ss/w:rd?')}@[::1]/d%20b`,
    )
    expect(u).toMatchObject({ user: 'ce@rt', password: 'p@ss/w:rd?', host: '::1', port: 5432 })
    expect(u.database).toBe('d b')
    expect(parsePostgresUrl('postgres:///certbound?host=/run/postgresql')).toMatchObject({
      host: '/run/postgresql',
      database: 'certbound',
    })
  })

  it('password_file is resolved against the config file', () => {
    const dir = join(root, 'a')
    mkdirSync(dir)
    const file = join(dir, 'ca-config.yaml')
    writeFileSync(
      file,
      'database:\n  url: postgres://certbound@127.0.0.1/certbound\n  password_file: secrets/db\n',
    )
    expect(loadConfig(file).database.passwordFile).toBe(join(dir, 'secrets', 'db'))
  })

  it.each([
    ['mysql://root@127.0.0.1/certbound', 'postgres://'],
    ['not a url', 'must be a URL'],
    ['postgres://127.0.0.1', 'must name the database'],
    ['postgres://127.0.0.1:70000/certbound', 'port'],
    [`postgres://u:${SECRET}@127.0.0.1/certbound?sslmode=prefer`, 'sslmode=prefer'],
    [`postgres://u:${SECRET}@127.0.0.1/certbound?sslmode=allow`, 'sslmode=allow'],
    [`postgres://u:${SECRET}@127.0.0.1/certbound?ssl=true`, 'unknown parameter "ssl"'],
    ['postgres://127.0.0.1/certbound?sslrootcert=/ca.pem', 'sslrootcert needs sslmode'],
    ['postgres://127.0.0.1/certbound?sslmode=require&sslcert=/c.pem', 'sslcert and sslkey'],
    ['postgres://127.0.0.1/certbound?connect_timeout=soon', 'connect_timeout'],
    [`postgres://u:${SECRET}@127.0.0.1/a/b`, 'one path segment'],
  ])('refuses %s', (url, why) => {
    const message = refusal({ url })
    expect(message).toContain('database.url')
    expect(message).toContain(why)
  })

  it('refuses a password_file without a URL, or beside a URL that has a password', () => {
    expect(refusal({ password_file: '/run/secrets/db' })).toContain('needs database.url')
    expect(
      refusal({
        url: `postgres://u:${SECRET}@127.0.0.1/certbound`,
        password_file: '/run/secrets/db',
      }),
    ).toContain('keep one')
  })

  it('refuses a pool size or startup timeout out of range', () => {
    expect(refusal({ pool_size: 0 })).toContain('database.pool_size')
    expect(refusal({ pool_size: 2.5 })).toContain('database.pool_size')
    expect(refusal({ startup_timeout: 'soon' })).toContain('database.startup_timeout')
  })
})
