import { randomBytes } from 'node:crypto'
import {
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import {
  keyEncryptionKey,
  newKeyEncryptionKeyBytes,
  type KeyEncryptionKey,
} from '../crypto/sealing.js'
import { fsyncPath } from '../durable-fs.js'

/** Where everything lives under data_dir (CONTRACT "Files under data_dir"). */
export const PATHS = {
  database: 'certbound.db',
  bundle: 'ca/bundle.pem',
  rootCert: 'ca/root.pem',
  rootKey: 'ca/root-key.pem',
  intermediateCert: 'ca/intermediate.pem',
  intermediateKey: 'ca/intermediate-key.pem',
  /** The key-encryption key: seals the private keys kept in the database (32 bytes, 0600). */
  kek: 'ca/kek.key',
  adminCert: 'admin/admin.pem',
  adminKey: 'admin/admin-key.pem',
  // Written by earlier versions; their contents move into the database at start.
  legacyServerCert: 'server/tls.pem',
  legacyServerKey: 'server/tls-key.pem',
} as const

/**
 * Writes a file atomically (temp file, fsync, rename) so a crash never leaves half a key
 * or certificate. Private keys get mode 0600 from creation, never a wider mode in between.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  writeFileSync(tmp, data, { mode, flag: 'wx' })
  fsyncPath(tmp)
  renameSync(tmp, path)
  fsyncPath(dirname(path))
}

/** A fresh, empty directory beside `name` under data_dir (0700), to be committed whole. */
export function stageDirectory(dataDir: string, name: string): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  return mkdtempSync(join(dataDir, `.${name}-`))
}

/**
 * Renames a staged directory into place in one step. False (and the staging removed) when the
 * target exists: another process committed first.
 */
export function commitDirectory(staging: string, target: string): boolean {
  fsyncPath(staging)
  try {
    renameSync(staging, target)
  } catch (e) {
    rmSync(staging, { recursive: true, force: true })
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false
    throw e
  }
  fsyncPath(dirname(target))
  return true
}

export function writePrivateKey(dataDir: string, rel: string, pem: string): void {
  writeFileAtomic(join(dataDir, rel), pem, 0o600)
}

export function writePublic(dataDir: string, rel: string, text: string): void {
  writeFileAtomic(join(dataDir, rel), text, 0o644)
}

export function readDataFile(dataDir: string, rel: string): string {
  return readFileSync(join(dataDir, rel), 'utf8')
}

/**
 * The key-encryption key of data_dir, created (O_EXCL, 0600) when missing: by `init`, or at
 * the first start of a data_dir made by an earlier version. Replicas that race to create it
 * all end up reading the one that won.
 */
export function loadKeyEncryptionKey(dataDir: string): KeyEncryptionKey {
  const path = join(dataDir, PATHS.kek)
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  try {
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    writeFileSync(tmp, newKeyEncryptionKeyBytes(), { mode: 0o600, flag: 'wx' })
    try {
      linkSync(tmp, path) // fails with EEXIST if another process created it first
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    } finally {
      unlinkSync(tmp)
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
  }
  const bytes = readFileSync(path)
  if (bytes.length !== 32) throw new Error(`${path} is not a 32-byte key-encryption key`)
  return keyEncryptionKey(bytes)
}
