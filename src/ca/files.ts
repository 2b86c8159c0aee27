import {
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
  openSync,
  fsyncSync,
  closeSync,
} from 'node:fs'
import { dirname, join } from 'node:path'

/** Where everything lives under data_dir (CONTRACT "Files under data_dir"). */
export const PATHS = {
  database: 'certbound.db',
  bundle: 'ca/bundle.pem',
  rootCert: 'ca/root.pem',
  rootKey: 'ca/root-key.pem',
  intermediateCert: 'ca/intermediate.pem',
  intermediateKey: 'ca/intermediate-key.pem',
  serverCert: 'server/tls.pem',
  serverKey: 'server/tls-key.pem',
  adminCert: 'admin/admin.pem',
  adminKey: 'admin/admin-key.pem',
  signingKeysDir: 'tokens',
} as const

/**
 * Writes a file atomically (temp file, fsync, rename) so a crash never leaves half a key
 * or certificate. Private keys get mode 0600 from creation, never a wider mode in between.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, data, { mode })
  const fd = openSync(tmp, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
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
