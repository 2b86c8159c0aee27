import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateKeyPairCb,
  sign,
  verify,
} from 'node:crypto'
import type { KeyObject } from 'node:crypto'

/** The key types certbound issues for and signs with (`certificates.allowed_key_types`). */
export type KeyType = 'ec-p256' | 'ec-p384' | 'ed25519' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096'

/** All supported key types, in the order of `allowed_key_types`' default. */
export const KEY_TYPES: readonly KeyType[] = Object.freeze([
  'ec-p256',
  'ec-p384',
  'ed25519',
  'rsa-2048',
  'rsa-3072',
  'rsa-4096',
])

const RSA_BITS: Readonly<Record<number, KeyType>> = {
  2048: 'rsa-2048',
  3072: 'rsa-3072',
  4096: 'rsa-4096',
}

/** Hash used with each key type: SHA-256 for P-256/RSA, SHA-384 for P-384, none (pure EdDSA). */
export function hashFor(type: KeyType): 'sha256' | 'sha384' | null {
  switch (type) {
    case 'ec-p384':
      return 'sha384'
    case 'ed25519':
      return null
    default:
      return 'sha256'
  }
}

/** Generates a key pair with node's async (thread-pool) generator. */
export function generateKeyPair(
  type: KeyType,
): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject): void => {
      if (err) reject(err)
      else resolve({ privateKey, publicKey })
    }
    switch (type) {
      case 'ec-p256':
        return generateKeyPairCb('ec', { namedCurve: 'P-256' }, done)
      case 'ec-p384':
        return generateKeyPairCb('ec', { namedCurve: 'P-384' }, done)
      case 'ed25519':
        return generateKeyPairCb('ed25519', {}, done)
      case 'rsa-2048':
      case 'rsa-3072':
      case 'rsa-4096':
        return generateKeyPairCb('rsa', { modulusLength: Number(type.slice(4)) }, done)
      default:
        reject(new TypeError(`unknown key type ${String(type)}`))
    }
  })
}

/**
 * The certbound key type of a public or private key, or `undefined` when it is not one we
 * support (other curves, RSA sizes other than 2048/3072/4096, RSA-PSS-only keys, Ed448, ...).
 */
export function keyTypeOf(key: KeyObject): KeyType | undefined {
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (details.namedCurve === 'prime256v1') return 'ec-p256'
      if (details.namedCurve === 'secp384r1') return 'ec-p384'
      return undefined
    case 'ed25519':
      return 'ed25519'
    case 'rsa':
      if (!rsaExponentOk(details.publicExponent)) return undefined
      return details.modulusLength === undefined ? undefined : RSA_BITS[details.modulusLength]
    default:
      return undefined
  }
}

/**
 * NIST SP 800-56B: an odd public exponent with 2^16 < e < 2^256. A tiny exponent (e = 1 makes
 * the "signature" the padded message itself) would let anyone forge proof of possession.
 */
function rsaExponentOk(e: bigint | undefined): boolean {
  return e !== undefined && e % 2n === 1n && e > 65536n && e < 1n << 256n
}

/** A human-readable reason why `keyTypeOf(key)` is undefined (for error messages). */
export function describeUnsupportedKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {}
  switch (key.asymmetricKeyType) {
    case 'ec':
      return `curve ${details.namedCurve ?? 'unknown'} is not supported (use P-256 or P-384)`
    case 'rsa': {
      const bits = details.modulusLength ?? 0
      if (!rsaExponentOk(details.publicExponent))
        return `RSA public exponent ${details.publicExponent} is refused: use 65537`
      if (bits < 2048) return `RSA ${bits}-bit keys are refused: minimum is 2048`
      return `RSA ${bits}-bit keys are not supported (use 2048, 3072 or 4096)`
    }
    default:
      return `key type ${key.asymmetricKeyType ?? 'unknown'} is not supported`
  }
}

/** Like `keyTypeOf`, but throws a TypeError naming the key when it is unsupported. */
export function requireKeyType(key: KeyObject): KeyType {
  const type = keyTypeOf(key)
  if (type === undefined) throw new TypeError(describeUnsupportedKey(key))
  return type
}

/** PKCS#8 PEM (unencrypted; the file mode protects it). */
export function privateKeyToPem(key: KeyObject): string {
  if (key.type !== 'private') throw new TypeError('privateKeyToPem needs a private key')
  return key.export({ type: 'pkcs8', format: 'pem' }) as string
}

/** Loads a PEM private key (PKCS#8, SEC1 or PKCS#1). */
export function privateKeyFromPem(pem: string): KeyObject {
  return createPrivateKey({ key: pem, format: 'pem' })
}

/** A public KeyObject from DER SubjectPublicKeyInfo (throws node's error on bad input). */
export function publicKeyFromSpki(spkiDer: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' })
}

/** DER SubjectPublicKeyInfo of a public key, or of a private key's public half. */
export function spkiDer(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  return new Uint8Array(pub.export({ type: 'spki', format: 'der' }))
}

/** The JWS `alg` (RFC 7518 §3.1, RFC 8037) matching our signing choice for a key type. */
export function jwsAlgFor(type: KeyType): 'ES256' | 'ES384' | 'EdDSA' | 'RS256' {
  switch (type) {
    case 'ec-p256':
      return 'ES256'
    case 'ec-p384':
      return 'ES384'
    case 'ed25519':
      return 'EdDSA'
    default:
      return 'RS256'
  }
}

/**
 * Signs with the hash fixed by the key type. ECDSA output is DER (X.509 and CMS want that;
 * JWS wants IEEE P1363, which the token service gets from jose), RSA is PKCS#1 v1.5.
 */
export function signWithKey(key: KeyObject, data: Uint8Array): Uint8Array {
  return new Uint8Array(sign(hashFor(requireKeyType(key)), data, key))
}

/** Verifies a signature made by `signWithKey` (same hash rules). */
export function verifyWithKey(key: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  return verify(hashFor(requireKeyType(key)), data, key, signature)
}
