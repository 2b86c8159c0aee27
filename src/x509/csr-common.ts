import type { KeyObject } from 'node:crypto'

import { describeUnsupportedKey, keyTypeOf, publicKeyFromSpki } from '../crypto/keys.js'
import type { KeyType } from '../crypto/keys.js'
import { CAError } from '../errors.js'
import { KEY_ALG } from './oids.js'

// What both CSR readers (the fast DER one, csr-fast.ts, and the pkijs one, csr.ts) share, so
// that they refuse with the same codes and messages.

/**
 * A PKCS#10 request whose self-signature verified. Everything except the key is the
 * requester's claim (smallstep's "insecure" data): policy decides what, if anything, is used.
 */
export interface ParsedCsr {
  readonly der: Uint8Array
  readonly publicKey: KeyObject
  /** Canonical SubjectPublicKeyInfo DER (as node exports the key). */
  readonly spkiDer: Uint8Array
  readonly keyType: KeyType
  readonly uris: readonly string[]
  readonly dnsNames: readonly string[]
  readonly ipAddresses: readonly string[]
  readonly emails: readonly string[]
  /** basicConstraints cA=TRUE requested in the extensionRequest attribute. */
  readonly requestsCA: boolean
}

const KNOWN_KEY_ALGS: readonly string[] = Object.values(KEY_ALG)

export function invalid(message: string, cause?: unknown): CAError {
  return new CAError('ERR_CSR_INVALID', message, cause === undefined ? undefined : { cause })
}

/** A CSR's public key from its SPKI bytes: unsupported → ERR_KEY_UNSUPPORTED, bad → invalid. */
export function importSpki(spki: Uint8Array, algorithmId: string): KeyObject {
  try {
    return publicKeyFromSpki(spki)
  } catch (e) {
    if (!KNOWN_KEY_ALGS.includes(algorithmId)) {
      throw new CAError(
        'ERR_KEY_UNSUPPORTED',
        `public key algorithm ${algorithmId} is not supported`,
        { cause: e },
      )
    }
    throw invalid('CSR public key is malformed', e)
  }
}

/** The key type of an imported CSR key, or ERR_KEY_UNSUPPORTED naming why not. */
export function supportedKeyType(publicKey: KeyObject): KeyType {
  const keyType = keyTypeOf(publicKey)
  if (keyType === undefined) {
    throw new CAError('ERR_KEY_UNSUPPORTED', describeUnsupportedKey(publicKey))
  }
  return keyType
}

/** Names collected from a CSR's subjectAltName. */
export interface CsrNames {
  uris: string[]
  dnsNames: string[]
  ipAddresses: string[]
  emails: string[]
}

export const emptyNames = (): CsrNames => ({ uris: [], dnsNames: [], ipAddresses: [], emails: [] })

/** The frozen result both readers return. */
export function parsedCsr(
  der: Uint8Array,
  key: { publicKey: KeyObject; spkiDer: Uint8Array; keyType: KeyType },
  names: CsrNames,
  requestsCA: boolean,
): ParsedCsr {
  return Object.freeze({
    der,
    ...key,
    uris: Object.freeze(names.uris),
    dnsNames: Object.freeze(names.dnsNames),
    ipAddresses: Object.freeze(names.ipAddresses),
    emails: Object.freeze(names.emails),
    requestsCA,
  })
}
