import { verify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'

import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

import { keyTypeOf, requireKeyType, signWithKey } from '../crypto/keys.js'
import type { KeyType } from '../crypto/keys.js'
import { SIG } from './oids.js'

// We build TBS structures with pkijs but sign with node:crypto: pkijs defaults to SHA-1 and
// has no Ed25519, and node is faster. The AlgorithmIdentifier is fixed by the issuer key type.

/**
 * The signatureAlgorithm for an issuer key: ecdsa-with-SHA256/384 (RFC 5758 §3.2, parameters
 * absent), sha256WithRSAEncryption (RFC 4055 §5, parameters NULL), Ed25519 (RFC 8410 §3,
 * parameters absent). Never SHA-1.
 */
export function signatureAlgorithmFor(type: KeyType): pkijs.AlgorithmIdentifier {
  switch (type) {
    case 'ec-p256':
      return new pkijs.AlgorithmIdentifier({ algorithmId: SIG.ecdsaWithSha256 })
    case 'ec-p384':
      return new pkijs.AlgorithmIdentifier({ algorithmId: SIG.ecdsaWithSha384 })
    case 'ed25519':
      return new pkijs.AlgorithmIdentifier({ algorithmId: SIG.ed25519 })
    default:
      return new pkijs.AlgorithmIdentifier({
        algorithmId: SIG.sha256WithRsa,
        algorithmParams: new asn1js.Null(),
      })
  }
}

/** Anything with a TBS part that pkijs encodes: Certificate and CertificateRevocationList. */
interface Signable {
  tbsView: Uint8Array
  signature: pkijs.AlgorithmIdentifier
  signatureAlgorithm: pkijs.AlgorithmIdentifier
  signatureValue: asn1js.BitString
  // The CRL's encodeTBS() is protected in pkijs typings; toSchema(true) re-encodes the TBS too.
  toSchema(encodeFlag?: boolean): asn1js.Sequence
}

/**
 * Sets both AlgorithmIdentifiers (they must match, RFC 5280 §4.1.1.2), encodes the TBS once,
 * signs exactly those bytes and returns the DER of the whole structure. `toSchema(false)`
 * re-uses the stored TBS bytes, so what is emitted is what was signed.
 */
export function signStructure(obj: Signable, key: KeyObject): Uint8Array {
  const type = requireKeyType(key)
  if (key.type !== 'private') throw new TypeError('signing needs a private key')
  obj.signature = signatureAlgorithmFor(type)
  obj.signatureAlgorithm = signatureAlgorithmFor(type)
  const tbs = obj.toSchema(true).valueBlock.value[0]
  if (!tbs) throw new Error('pkijs produced no TBS')
  obj.tbsView = new Uint8Array(tbs.toBER())
  const signature = signWithKey(key, obj.tbsView)
  obj.signatureValue = new asn1js.BitString({ valueHex: signature })
  return new Uint8Array(obj.toSchema(false).toBER())
}

interface VerifyRule {
  readonly hash: 'sha256' | 'sha384' | 'sha512' | null
  readonly keyKind: 'ec' | 'rsa' | 'ed25519'
}

// Signature algorithms accepted on incoming CSRs (never SHA-1 or MD5).
const VERIFY_RULES: Readonly<Record<string, VerifyRule>> = {
  [SIG.ecdsaWithSha256]: { hash: 'sha256', keyKind: 'ec' },
  [SIG.ecdsaWithSha384]: { hash: 'sha384', keyKind: 'ec' },
  [SIG.ecdsaWithSha512]: { hash: 'sha512', keyKind: 'ec' },
  [SIG.sha256WithRsa]: { hash: 'sha256', keyKind: 'rsa' },
  [SIG.sha384WithRsa]: { hash: 'sha384', keyKind: 'rsa' },
  [SIG.sha512WithRsa]: { hash: 'sha512', keyKind: 'rsa' },
  [SIG.ed25519]: { hash: null, keyKind: 'ed25519' },
}

/**
 * Verifies `signature` over `data` with the algorithm named by `algorithmId`. Returns a reason
 * string when it fails, undefined when it verifies.
 */
/** Names for algorithms users meet, so a refusal says what to change. */
const KNOWN_UNSUPPORTED: Record<string, string> = {
  '1.2.840.113549.1.1.10': "RSA-PSS (use PKCS#1 v1.5 with SHA-256, openssl's default)",
  '1.2.840.113549.1.1.5': 'SHA-1 with RSA',
  '1.2.840.113549.1.1.4': 'MD5 with RSA',
  '1.2.840.10045.4.1': 'ECDSA with SHA-1',
  '1.3.101.113': 'Ed448',
}

export function checkSignature(
  algorithmId: string,
  key: KeyObject,
  data: Uint8Array,
  signature: Uint8Array,
  keyType: KeyType | undefined = keyTypeOf(key), // callers that know it save a native call
): string | undefined {
  const rule = VERIFY_RULES[algorithmId]
  if (!rule) {
    const known = KNOWN_UNSUPPORTED[algorithmId]
    return known
      ? `${known} signatures are not supported`
      : `unsupported signature algorithm ${algorithmId}`
  }
  if (key.asymmetricKeyType !== rule.keyKind || keyType === undefined) {
    return `signature algorithm ${algorithmId} does not match the ${key.asymmetricKeyType} key`
  }
  try {
    if (verify(rule.hash, data, key, signature)) return undefined
  } catch {
    // A malformed ECDSA DER signature throws instead of returning false.
  }
  return 'signature does not verify (no proof of possession of the private key)'
}
