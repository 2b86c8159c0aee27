import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'

/**
 * Private keys the CA writes after `init` (token-signing keys, the server's renewed TLS key,
 * issuing CAs of a rotation) live in the database, sealed with AES-256-GCM under the
 * key-encryption key, a 32-byte file in data_dir that `init` writes (0600) and that every
 * replica has. The additional data names what is sealed, so a sealed blob moved to another
 * row does not open there.
 *
 * Sealed format: version byte 1 ‖ 12-byte IV ‖ ciphertext ‖ 16-byte tag.
 */
export interface KeyEncryptionKey {
  seal(plaintext: Uint8Array | string, purpose: string): Uint8Array
  open(sealed: Uint8Array, purpose: string): Buffer
}

const VERSION = 1

export function keyEncryptionKey(key: Uint8Array): KeyEncryptionKey {
  if (key.length !== 32) throw new TypeError('the key-encryption key must be 32 bytes')
  const k = Buffer.from(key)
  return {
    seal(plaintext, purpose) {
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', k, iv)
      cipher.setAAD(Buffer.from(purpose, 'utf8'))
      const body = Buffer.concat([
        cipher.update(typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext),
        cipher.final(),
      ])
      return new Uint8Array(Buffer.concat([Buffer.from([VERSION]), iv, body, cipher.getAuthTag()]))
    },
    open(sealed, purpose) {
      const b = Buffer.from(sealed)
      if (b.length < 1 + 12 + 16 || b[0] !== VERSION)
        throw new Error(`sealed ${purpose}: unknown format`)
      const decipher = createDecipheriv('aes-256-gcm', k, b.subarray(1, 13))
      decipher.setAAD(Buffer.from(purpose, 'utf8'))
      decipher.setAuthTag(b.subarray(b.length - 16))
      try {
        return Buffer.concat([decipher.update(b.subarray(13, b.length - 16)), decipher.final()])
      } catch {
        throw new Error(
          `sealed ${purpose} does not open with this key-encryption key (another data_dir?)`,
        )
      }
    },
  }
}

export function newKeyEncryptionKeyBytes(): Uint8Array {
  return new Uint8Array(randomBytes(32))
}
