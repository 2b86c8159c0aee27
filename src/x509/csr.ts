import type { KeyObject } from 'node:crypto'

import * as pkijs from 'pkijs'

import {
  describeUnsupportedKey,
  keyTypeOf,
  publicKeyFromSpki,
  spkiDer as spkiOf,
} from '../crypto/keys.js'
import type { KeyType } from '../crypto/keys.js'
import { CAError } from '../errors.js'
import { decodeDer, encode, toBytes } from './der.js'
import { readBasicConstraints, readSubjectAltName } from './extensions.js'
import { EXT, EXTENSION_REQUEST, KEY_ALG } from './oids.js'
import { pemToDer } from './pem.js'
import { checkSignature } from './signing.js'

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

function invalid(message: string, cause?: unknown): CAError {
  return new CAError('ERR_CSR_INVALID', message, cause === undefined ? undefined : { cause })
}

/** The Extensions from the (single) PKCS#9 extensionRequest attribute, RFC 2986 §4.1. */
function requestedExtensions(csr: pkijs.CertificationRequest): pkijs.Extension[] {
  const attrs = (csr.attributes ?? []).filter((a) => a.type === EXTENSION_REQUEST)
  if (attrs.length === 0) return []
  if (attrs.length > 1 || attrs[0]!.values.length !== 1) {
    throw invalid('CSR extensionRequest must appear once, with one value')
  }
  const extensions = new pkijs.Extensions({ schema: attrs[0]!.values[0] }).extensions
  const ids = extensions.map((e) => e.extnID)
  const dup = ids.find((id, i) => ids.indexOf(id) !== i)
  if (dup !== undefined) throw invalid(`CSR requests extension ${dup} more than once`)
  return extensions
}

function importKey(csr: pkijs.CertificationRequest): { publicKey: KeyObject; keyType: KeyType } {
  const alg = csr.subjectPublicKeyInfo.algorithm.algorithmId
  let publicKey: KeyObject
  try {
    publicKey = publicKeyFromSpki(encode(csr.subjectPublicKeyInfo.toSchema()))
  } catch (e) {
    if (!KNOWN_KEY_ALGS.includes(alg)) {
      throw new CAError('ERR_KEY_UNSUPPORTED', `public key algorithm ${alg} is not supported`, {
        cause: e,
      })
    }
    throw invalid('CSR public key is malformed', e)
  }
  const keyType = keyTypeOf(publicKey)
  if (keyType === undefined) {
    throw new CAError('ERR_KEY_UNSUPPORTED', describeUnsupportedKey(publicKey))
  }
  return { publicKey, keyType }
}

function parse(der: Uint8Array): ParsedCsr {
  let csr: pkijs.CertificationRequest
  try {
    csr = new pkijs.CertificationRequest({ schema: decodeDer(der, 'CSR') })
  } catch (e) {
    throw invalid('CSR is not a valid PKCS#10 CertificationRequest', e)
  }
  if (csr.version !== 0) throw invalid(`CSR version ${csr.version} is not v1 (0)`)
  // Key type first: no point verifying, and no CPU spent, on a key we would refuse anyway.
  const { publicKey, keyType } = importKey(csr)
  // Proof of possession: the signature covers the CertificationRequestInfo bytes as received.
  const failure = checkSignature(
    csr.signatureAlgorithm.algorithmId,
    publicKey,
    csr.tbsView,
    csr.signatureValue.valueBlock.valueHexView,
  )
  if (failure !== undefined) throw invalid(`CSR ${failure}`)
  const names = {
    uris: [] as string[],
    dnsNames: [] as string[],
    ipAddresses: [] as string[],
    emails: [] as string[],
  }
  let requestsCA = false
  for (const e of requestedExtensions(csr)) {
    if (e.extnID === EXT.subjectAltName) Object.assign(names, readSubjectAltName(e))
    else if (e.extnID === EXT.basicConstraints) requestsCA = readBasicConstraints(e).ca
  }
  return {
    der,
    publicKey,
    spkiDer: spkiOf(publicKey),
    keyType,
    uris: Object.freeze(names.uris),
    dnsNames: Object.freeze(names.dnsNames),
    ipAddresses: Object.freeze(names.ipAddresses),
    emails: Object.freeze(names.emails),
    requestsCA,
  }
}

/**
 * Parses a PEM CSR and verifies its self-signature (proof of possession). Bad input never
 * escapes as anything but a CAError: ERR_PEM_INVALID (not PEM / wrong label),
 * ERR_KEY_UNSUPPORTED (key type or size) or ERR_CSR_INVALID (everything else).
 */
export function parseCsr(pem: string): ParsedCsr {
  return parseCsrDer(pemToDer(pem, 'CERTIFICATE REQUEST'))
}

/** As {@link parseCsr}, for DER bytes (the domain's input: the edges decode PEM or base64). */
export function parseCsrDer(der: Uint8Array): ParsedCsr {
  try {
    return Object.freeze(parse(toBytes(der)))
  } catch (e) {
    if (e instanceof CAError) throw e
    const reason = e instanceof Error ? e.message : String(e)
    throw invalid(`CSR is malformed: ${reason}`, e)
  }
}
