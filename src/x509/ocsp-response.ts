import { createHash, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'

import { hashFor, requireKeyType } from '../crypto/keys.js'
import { wholeSeconds } from './der.js'
import { childrenOf, readDer } from './der-reader.js'
import * as w from './der-writer.js'
import { REASON_CODES, type RevocationReason } from './crl.js'
import { signatureAlgorithmDer } from './template.js'

// OCSP responses (RFC 6960 §4.2.1), assembled from DER pieces and signed with node:crypto:
//   OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
//   ResponseBytes ::= SEQUENCE { responseType id-pkix-ocsp-basic, response OCTET STRING }
//   BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm,
//     signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
//   ResponseData ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, responderID ResponderID,
//     producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse,
//     responseExtensions [1] EXPLICIT Extensions OPTIONAL }
//   SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
//     nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, singleExtensions [1] EXPLICIT OPTIONAL }

/** OCSPResponseStatus values (RFC 6960 §4.2.1); 4 is not used. */
export const OCSP_STATUS = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
} as const

const BASIC = '1.3.6.1.5.5.7.48.1.1'

/** An unsigned answer: only the status (RFC 6960 §2.3). */
export function ocspErrorResponse(status: Exclude<keyof typeof OCSP_STATUS, 'successful'>) {
  return Uint8Array.of(0x30, 0x03, 0x0a, 0x01, OCSP_STATUS[status])
}

/** GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 §4.1.2.5.2: whole seconds, Z). */
function generalizedTime(date: Date): Uint8Array {
  const d = wholeSeconds(date)
  const text = d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d{3}/, '')
  return w.ascii(0x18, text)
}

export type SingleStatus =
  | { readonly kind: 'good' }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'revoked'; readonly at: Date; readonly reason: RevocationReason | null }

export interface SingleAnswer {
  /** The request's CertID, echoed byte for byte. */
  readonly certIdDer: Uint8Array
  readonly status: SingleStatus
  readonly thisUpdate: Date
  readonly nextUpdate: Date
}

/** The responder: a delegated responder certificate (or the CA itself) and its key. */
export interface OcspSigner {
  readonly certDer: Uint8Array
  readonly privateKey: KeyObject
  /** Include the certificate in `certs` (a delegated responder must, RFC 6960 §4.2.2.2). */
  readonly includeCertificate: boolean
}

// Per signer: ResponderID byKey (SHA-1 of the subjectPublicKey BIT STRING value, RFC 6960
// §4.2.1 KeyHash), the AlgorithmIdentifier and the certs field.
const signerPieces = new WeakMap<
  KeyObject,
  { id: Uint8Array; alg: Uint8Array; certs: Uint8Array; der: Uint8Array }
>()

function piecesOf(signer: OcspSigner) {
  const cached = signerPieces.get(signer.privateKey)
  if (cached && cached.der === signer.certDer) return cached
  const cert = readDer(signer.certDer)
  const tbs = childrenOf(signer.certDer, childrenOf(signer.certDer, cert)[0]!)
  const spki = tbs[tbs[0]!.tag === 0xa0 ? 6 : 5]!
  const bits = childrenOf(signer.certDer, spki)[1]!
  const keyHash = createHash('sha1')
    .update(signer.certDer.subarray(bits.start + 1, bits.end))
    .digest()
  const pieces = {
    id: w.tlv(0xa2, w.octetString(keyHash)),
    alg: signatureAlgorithmDer(requireKeyType(signer.privateKey)),
    certs: signer.includeCertificate ? w.tlv(0xa0, w.sequence(signer.certDer)) : new Uint8Array(),
    der: signer.certDer,
  }
  signerPieces.set(signer.privateKey, pieces)
  return pieces
}

function certStatus(s: SingleStatus): Uint8Array {
  if (s.kind === 'good') return Uint8Array.of(0x80, 0x00)
  if (s.kind === 'unknown') return Uint8Array.of(0x82, 0x00)
  // RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
  const reason =
    s.reason === null || s.reason === 'unspecified'
      ? []
      : [w.tlv(0xa0, Uint8Array.of(0x0a, 0x01, REASON_CODES[s.reason]))]
  return w.tlv(0xa1, generalizedTime(s.at), ...reason)
}

function singleResponse(a: SingleAnswer): Uint8Array {
  return w.sequence(
    a.certIdDer,
    certStatus(a.status),
    generalizedTime(a.thisUpdate),
    w.tlv(0xa0, generalizedTime(a.nextUpdate)),
  )
}

/**
 * A signed, successful OCSPResponse with one SingleResponse per answer; `nonceExtension` (the
 * request's, as sent) is echoed in responseExtensions (RFC 8954 §2.1). `lint` checks the
 * ResponseData before it is signed.
 */
export function buildOcspResponse(
  p: {
    readonly signer: OcspSigner
    readonly producedAt: Date
    readonly answers: readonly SingleAnswer[]
    readonly nonceExtension?: Uint8Array
  },
  lint?: (tbs: Uint8Array) => void,
): Uint8Array {
  if (p.answers.length === 0) throw new TypeError('an OCSP response answers at least one CertID')
  const pieces = piecesOf(p.signer)
  const tbs = w.sequence(
    pieces.id,
    generalizedTime(p.producedAt),
    w.sequence(...p.answers.map(singleResponse)),
    ...(p.nonceExtension ? [w.tlv(0xa1, w.sequence(p.nonceExtension))] : []),
  )
  lint?.(tbs)
  const type = requireKeyType(p.signer.privateKey)
  const signature = sign(hashFor(type), tbs, p.signer.privateKey)
  const basic = w.sequence(tbs, pieces.alg, w.bitString(signature), pieces.certs)
  return w.sequence(
    Uint8Array.of(0x0a, 0x01, OCSP_STATUS.successful),
    w.tlv(0xa0, w.sequence(w.oid(BASIC), w.octetString(basic))),
  )
}
