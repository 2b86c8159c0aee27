import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { orderedTokenId } from './ordered-id.js'

/**
 * Opaque secrets (join and refresh tokens): a 16-character lookup id followed by 256 bits
 * from the CSPRNG, all base64url. The id starts with the time (orderedTokenId), so that the
 * index on it grows at one end; the secret is the 256 bits. The database keeps the id and a SHA-256 of the whole
 * token; the presented token is found by id and its hash compared in constant time, so
 * neither the index lookup nor the comparison is a timing oracle on the secret.
 */
const ID_LENGTH = 16
const SECRET_LENGTH = 43

export interface SecretToken {
  readonly token: string
  readonly id: string
  readonly hash: string
}

export function newSecretToken(): SecretToken {
  const token = orderedTokenId() + randomBytes(32).toString('base64url')
  return { token, id: token.slice(0, ID_LENGTH), hash: hashSecret(token) }
}

/** The lookup id of a presented token, or undefined when it cannot be one of ours. */
export function secretTokenId(token: string): string | undefined {
  if (token.length !== ID_LENGTH + SECRET_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token))
    return undefined
  return token.slice(0, ID_LENGTH)
}

export function hashSecret(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

export function secretMatches(token: string, storedHash: string): boolean {
  const a = Buffer.from(hashSecret(token), 'hex')
  const b = Buffer.from(storedHash, 'hex')
  return a.length === b.length && timingSafeEqual(a, b)
}
