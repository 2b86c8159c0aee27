import type { KeyObject } from 'node:crypto'

import * as pkijs from 'pkijs'

import { spkiDer as spkiOf } from '../crypto/keys.js'
import type { KeyType } from '../crypto/keys.js'
import { CAError } from '../errors.js'
import {
  emptyNames,
  importSpki,
  invalid,
  parsedCsr,
  supportedKeyType,
  type ParsedCsr,
} from './csr-common.js'
import { readCsrFast } from './csr-fast.js'
import { decodeDer, encode, toBytes } from './der.js'
import { readBasicConstraints, readSubjectAltName } from './extensions.js'
import { EXT, EXTENSION_REQUEST } from './oids.js'
import { pemToDer } from './pem.js'
import { checkSignature } from './signing.js'

export type { ParsedCsr } from './csr-common.js'

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
  const publicKey = importSpki(encode(csr.subjectPublicKeyInfo.toSchema()), alg)
  return { publicKey, keyType: supportedKeyType(publicKey) }
}

/** The pkijs reader: BER-tolerant, every shape pkijs knows; the fast reader's fallback. */
function parseWithPkijs(der: Uint8Array): ParsedCsr {
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
  const names = emptyNames()
  let requestsCA = false
  for (const e of requestedExtensions(csr)) {
    if (e.extnID === EXT.subjectAltName) Object.assign(names, readSubjectAltName(e))
    else if (e.extnID === EXT.basicConstraints) requestsCA = readBasicConstraints(e).ca
  }
  return parsedCsr(der, { publicKey, spkiDer: spkiOf(publicKey), keyType }, names, requestsCA)
}

function guarded(
  der: Uint8Array,
  read: (der: Uint8Array) => ParsedCsr | undefined,
): ParsedCsr | undefined {
  try {
    return read(toBytes(der))
  } catch (e) {
    if (e instanceof CAError) throw e
    const reason = e instanceof Error ? e.message : String(e)
    throw invalid(`CSR is malformed: ${reason}`, e)
  }
}

/**
 * Parses a DER CSR and verifies its self-signature (proof of possession): the strict fast
 * reader first, pkijs for valid DER of a shape the fast reader does not model. Bad input never
 * escapes as anything but a CAError: ERR_KEY_UNSUPPORTED (key type or size) or ERR_CSR_INVALID
 * (everything else, including encodings that are not minimal DER).
 */
export function parseCsrDer(der: Uint8Array): ParsedCsr {
  if (!(der instanceof Uint8Array)) throw new TypeError('parseCsrDer needs a Uint8Array')
  return guarded(der, readCsrFast) ?? guarded(der, parseWithPkijs)!
}

/** The pkijs reader alone (tests compare the fast reader with it). Same errors as parseCsrDer. */
export function parseCsrDerWithPkijs(der: Uint8Array): ParsedCsr {
  return guarded(der, parseWithPkijs)!
}

/**
 * Parses a PEM CSR and verifies its self-signature, as `parseCsrDer`; not PEM or a wrong
 * label: ERR_PEM_INVALID.
 */
export function parseCsr(pem: string): ParsedCsr {
  return parseCsrDer(pemToDer(pem, 'CERTIFICATE REQUEST'))
}
