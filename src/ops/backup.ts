import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { PATHS, readDataFile } from '../ca/files.js'
import type { Config } from '../config/load.js'
import {
  backupSqlite,
  liveLeaseHolder,
  readSqliteBackup,
  restoreSqlite,
  type BackupManifest,
} from '../db/backup.js'
import { poolConfig } from '../db/postgres/open.js'
import { readMigrations } from '../db/sqlite/migrate.js'
import { CAError } from '../errors.js'
import { pemToDer } from '../x509/pem.js'

/**
 * What a backup of the database never holds: the CA keys and the key-encryption key stay in
 * data_dir (copy `ca/` separately and keep it as secret as the keys themselves). Without
 * `ca/kek.key` the sealed keys in the database (token signing, server TLS) cannot be opened.
 */
export const NOT_IN_BACKUP = [PATHS.rootKey, PATHS.intermediateKey, PATHS.kek, PATHS.adminKey]

const NOTE =
  'the database only: copy data_dir/ca (CA keys and the key-encryption key kek.key) separately ' +
  'and keep it secret; a restore needs it in place'

const sha256 = (der: Uint8Array) => createHash('sha256').update(der).digest('hex')

/** The root this data_dir's CA files hold (SHA-256 of its DER), or undefined without a CA. */
function dataDirRoot(config: Config): string | undefined {
  if (!existsSync(join(config.dataDir, PATHS.rootCert))) return undefined
  return sha256(pemToDer(readDataFile(config.dataDir, PATHS.rootCert), 'CERTIFICATE'))
}

export interface BackupReport {
  readonly file: string
  readonly backend: 'sqlite' | 'postgres'
  readonly manifest: BackupManifest
}

/** `certbound backup FILE`: a consistent copy of the database while the server runs. */
export async function backup(
  config: Config,
  file: string,
  now = new Date(),
): Promise<BackupReport> {
  const target = resolve(file)
  if (config.database.url !== undefined) return pgDump(config, target, now)
  const source = join(config.dataDir, PATHS.database)
  if (!existsSync(source)) throw new CAError('ERR_NOT_FOUND', `no database at ${source}`)
  const manifest = await backupSqlite(source, target, (copy) => ({
    format: 'certbound-backup-1',
    backend: 'sqlite',
    created_at: now.toISOString(),
    schema_version: String(copy.schemaVersion),
    root_sha256: copy.roots.map(sha256).join(' '),
    not_included: NOT_IN_BACKUP.join(' '),
    note: NOTE,
  }))
  return { file: target, backend: 'sqlite', manifest }
}

/**
 * PostgreSQL: `pg_dump --format=custom` of `database.url` (the password, if any, goes through
 * PGPASSWORD, never argv), with the manifest beside it as FILE.manifest.json. Without pg_dump
 * on PATH (or `CERTBOUND_PG_DUMP`) the command to run is the error message.
 */
function pgDump(config: Config, target: string, now: Date): BackupReport {
  const { url, passwordFile } = config.database
  const u = new URL(url!)
  u.password = ''
  u.searchParams.delete('password')
  const password = (poolConfig({ url: url!, passwordFile }).password as () => string)()
  const bin = process.env.CERTBOUND_PG_DUMP ?? 'pg_dump'
  const args = ['--format=custom', '--no-owner', `--file=${target}`, `--dbname=${u.href}`]
  const how = `PGPASSWORD=… ${bin} ${args.join(' ')}`
  if (existsSync(target)) throw new CAError('ERR_CONFLICT', `${target} exists; not overwriting it`)
  const run = spawnSync(bin, args, {
    env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) },
    encoding: 'utf8',
  })
  if (run.error)
    throw new CAError(
      'ERR_NOT_FOUND',
      `pg_dump is not available (${run.error.message}); run: ${how}`,
    )
  if (run.status !== 0)
    throw new CAError('ERR_STORAGE_UNAVAILABLE', `pg_dump failed: ${run.stderr.trim()}`)
  const manifest = {
    format: 'certbound-backup-1',
    backend: 'postgres',
    created_at: now.toISOString(),
    schema_version: String(readMigrations().at(-1)?.version ?? 0),
    root_sha256: dataDirRoot(config) ?? '',
    not_included: NOT_IN_BACKUP.join(' '),
    note: NOTE,
  }
  writeFileSync(`${target}.manifest.json`, `${JSON.stringify(manifest, null, 2)}\n`, {
    mode: 0o600,
  })
  return { file: target, backend: 'postgres', manifest }
}

export interface RestoreReport {
  readonly restored: string
  readonly previous: string | undefined
  readonly manifest: BackupManifest
}

/**
 * `certbound restore FILE` into a data_dir whose server is stopped. Refused unless the backup
 * belongs to the CA of data_dir (its root in `ca_certificates` is `ca/root.pem`), its schema is
 * not newer than this certbound, and no server holds the database's maintenance lease.
 */
export function restore(config: Config, file: string, now = new Date()): RestoreReport {
  if (config.database.url !== undefined) {
    throw new CAError(
      'ERR_BAD_REQUEST',
      'with PostgreSQL, restore the dump with pg_restore into an empty database, then run ' +
        '`certbound doctor` (it checks that the database belongs to this CA): ' +
        `PGPASSWORD=… pg_restore --no-owner --dbname=<database.url> ${file}`,
    )
  }
  const contents = readSqliteBackup(resolve(file))
  const root = dataDirRoot(config)
  if (root === undefined) {
    throw new CAError(
      'ERR_NOT_FOUND',
      `${config.dataDir} holds no CA (${PATHS.rootCert}): put the CA files (ca/, from your key backup) in place first`,
    )
  }
  const roots = contents.roots.map(sha256)
  if (!roots.includes(root)) {
    throw new CAError(
      'ERR_CONFLICT',
      `the backup belongs to another CA (root sha256 ${roots[0] ?? 'none'}); ` +
        `${config.dataDir} holds root sha256 ${root}`,
    )
  }
  const latest = readMigrations().at(-1)?.version ?? 0
  if (contents.schemaVersion > latest) {
    throw new CAError(
      'ERR_DB_TOO_NEW',
      `the backup's schema version ${contents.schemaVersion} is newer than this certbound (${latest})`,
    )
  }
  const target = join(config.dataDir, PATHS.database)
  const live = liveLeaseHolder(target, now.getTime())
  if (live) {
    throw new CAError(
      'ERR_CONFLICT',
      `a server is running on ${config.dataDir} (it holds the maintenance lease until ` +
        `${new Date(live.expiresAt).toISOString()}): stop it first`,
    )
  }
  const previous = restoreSqlite(resolve(file), target, now)
  return { restored: target, previous, manifest: contents.manifest }
}
