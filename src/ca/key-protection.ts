import { createPrivateKey, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { Config } from '../config/load.js'
import { CAError } from '../errors.js'
import { PATHS, readDataFile, writePrivateKey } from './files.js'

/** The environment variable a CA-key passphrase may come from (never argv: `ps` shows argv). */
export const PASSPHRASE_ENV = 'CERTBOUND_CA_KEY_PASSPHRASE'

const ENCRYPTED = '-----BEGIN ENCRYPTED PRIVATE KEY-----'

/**
 * The passphrase of the CA key files: `ca.key_passphrase_file` (its first line), else the
 * environment variable CERTBOUND_CA_KEY_PASSPHRASE; undefined when neither is set (keys are
 * stored unencrypted, protected by their 0600 mode alone).
 */
export function caKeyPassphrase(
  config: Pick<Config, 'ca'>,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const file = config.ca.keyPassphraseFile
  if (file !== undefined) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (e) {
      throw new CAError(
        'ERR_CONFIG_INVALID',
        `cannot read ca.key_passphrase_file ${file}: ${(e as Error).message}`,
      )
    }
    const passphrase = text.replace(/\r?\n$/, '')
    if (!passphrase)
      throw new CAError('ERR_CONFIG_INVALID', `ca.key_passphrase_file ${file} is empty`)
    return passphrase
  }
  const fromEnv = env[PASSPHRASE_ENV]
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv
}

export function isEncryptedKeyPem(pem: string): boolean {
  return pem.includes(ENCRYPTED)
}

/** A CA private key file's PEM: encrypted PKCS#8 (AES-256-CBC, PBKDF2) with a passphrase. */
export function caKeyToPem(key: KeyObject, passphrase: string | undefined): string {
  if (key.type !== 'private') throw new TypeError('caKeyToPem needs a private key')
  if (passphrase === undefined) return key.export({ type: 'pkcs8', format: 'pem' }) as string
  return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string
}

/** Reads a CA key file's PEM, encrypted or not; `file` names it in errors. */
export function caKeyFromPem(pem: string, passphrase: string | undefined, file: string): KeyObject {
  if (isEncryptedKeyPem(pem) && passphrase === undefined) {
    throw new CAError(
      'ERR_CONFIG_INVALID',
      `${file} is encrypted: give its passphrase in ca.key_passphrase_file or ${PASSPHRASE_ENV}`,
    )
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem', ...(passphrase && { passphrase }) })
  } catch (e) {
    const why = isEncryptedKeyPem(pem) ? 'wrong passphrase or damaged file' : (e as Error).message
    throw new CAError('ERR_CONFIG_INVALID', `cannot read ${file}: ${why}`)
  }
}

/**
 * `certbound ca encrypt-keys`: rewrites the root and intermediate key files of data_dir as
 * encrypted PKCS#8 under the configured passphrase (each atomically, mode 0600). A file that
 * is already encrypted must open with that passphrase, and is left as it is.
 */
export function encryptCaKeyFiles(config: Pick<Config, 'ca' | 'dataDir'>): string[] {
  const passphrase = caKeyPassphrase(config)
  if (passphrase === undefined) {
    throw new CAError(
      'ERR_CONFIG_INVALID',
      `no passphrase: set ca.key_passphrase_file or ${PASSPHRASE_ENV}`,
    )
  }
  const changed: string[] = []
  for (const rel of [PATHS.rootKey, PATHS.intermediateKey]) {
    const pem = readDataFile(config.dataDir, rel)
    const key = caKeyFromPem(pem, isEncryptedKeyPem(pem) ? passphrase : undefined, rel)
    if (isEncryptedKeyPem(pem)) continue
    writePrivateKey(config.dataDir, rel, caKeyToPem(key, passphrase))
    changed.push(rel)
  }
  return changed
}
