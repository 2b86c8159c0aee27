import { sign } from 'node:crypto'

import { hashFor, requireKeyType } from '../crypto/keys.js'
import { issuerView } from './certificate.js'
import type { Issuer } from './certificate.js'
import { wholeSeconds } from './der.js'
import * as w from './der-writer.js'
import { keyIdentifier } from './extensions.js'
import { EXT } from './oids.js'
import { serialFromHex } from './serial.js'
import { signatureAlgorithmDer } from './template.js'

/** CRLReason names as in RFC 5280 §5.3.1 (also the API's `reason` values). */
export type RevocationReason =
  | 'unspecified'
  | 'keyCompromise'
  | 'cACompromise'
  | 'affiliationChanged'
  | 'superseded'
  | 'cessationOfOperation'
  | 'certificateHold'
  | 'removeFromCRL'
  | 'privilegeWithdrawn'
  | 'aACompromise'

/** CRLReason values, RFC 5280 §5.3.1 (7 is not used). */
export const REASON_CODES: Readonly<Record<RevocationReason, number>> = Object.freeze({
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  removeFromCRL: 8,
  privilegeWithdrawn: 9,
  aACompromise: 10,
})

/** One revoked certificate as listed in a CRL. */
export interface RevokedEntry {
  readonly serialHex: string
  readonly revokedAt: Date
  readonly reason: RevocationReason
}

/** Input of `buildCrl`: the issuing CA, a monotonically increasing number, the window. */
export interface CrlParams {
  readonly issuer: Issuer
  readonly crlNumber: bigint
  readonly thisUpdate: Date
  readonly nextUpdate: Date
  readonly revoked: readonly RevokedEntry[]
}

// The fast CRL encoder: DER pieces and node:crypto, no asn1js object per entry (asn1js limits
// the nodes of one structure, which made CRLs of more than ~1,250 entries fail to build).
// Byte-identical to the pkijs reference (crl-pkijs.ts) — test/unit/x509/crl-fast.test.ts.
// RFC 5280 §5.1:
//   TBSCertList ::= SEQUENCE { version INTEGER v2(1), signature AlgorithmIdentifier,
//     issuer Name, thisUpdate Time, nextUpdate Time,
//     revokedCertificates SEQUENCE OF SEQUENCE { userCertificate CertificateSerialNumber,
//       revocationDate Time, crlEntryExtensions Extensions OPTIONAL } OPTIONAL,
//     crlExtensions [0] EXPLICIT Extensions }

const VERSION_2 = Uint8Array.of(0x02, 0x01, 0x01)

/** reasonCode entry extension (§5.3.1), non-critical ENUMERATED; one encoding per code. */
const REASON_EXTENSIONS = new Map<number, Uint8Array>(
  Object.values(REASON_CODES).map((code) => [
    code,
    w.sequence(w.sequence(w.oid(EXT.reasonCode), w.octetString(Uint8Array.of(0x0a, 1, code)))),
  ]),
)

/** A non-negative INTEGER of at most 20 octets (cRLNumber, §5.2.3). */
function crlNumberDer(n: bigint): Uint8Array {
  if (n < 0n || n >= 1n << 159n) throw new TypeError('cRLNumber must be in 0..2^159-1')
  let hex = n.toString(16)
  if (hex.length % 2) hex = `0${hex}`
  const bytes = Buffer.from(hex, 'hex')
  return w.integerOf(bytes[0]! & 0x80 ? Buffer.concat([Buffer.of(0), bytes]) : bytes)
}

function entryDer(e: RevokedEntry): Uint8Array {
  const code = REASON_CODES[e.reason]
  if (code === undefined) throw new TypeError(`unknown revocation reason ${String(e.reason)}`)
  const serial = w.integerOf(serialFromHex(e.serialHex))
  const when = w.x509TimeDer(wholeSeconds(e.revokedAt))
  // RFC 5280 §5.3.1: the reasonCode SHOULD be absent rather than say "unspecified".
  return code === REASON_CODES.unspecified
    ? w.sequence(serial, when)
    : w.sequence(serial, when, REASON_EXTENSIONS.get(code)!)
}

/** The TBSCertList these params describe (what `buildCrl` signs). */
export function crlTbs(p: CrlParams): Uint8Array {
  const ca = issuerView(p.issuer)
  const type = requireKeyType(p.issuer.privateKey)
  const thisUpdate = wholeSeconds(p.thisUpdate)
  const nextUpdate = wholeSeconds(p.nextUpdate)
  if (nextUpdate.getTime() <= thisUpdate.getTime()) {
    throw new TypeError('nextUpdate must be after thisUpdate')
  }
  const keyId = ca.subjectKeyId ?? keyIdentifier(ca.spkiDer)
  const extensions = w.tlv(
    0xa0,
    w.sequence(
      // authorityKeyIdentifier (MUST, §5.2.1) and cRLNumber (MUST, §5.2.3), non-critical.
      w.sequence(w.oid(EXT.authorityKeyIdentifier), w.octetString(w.sequence(w.tlv(0x80, keyId)))),
      w.sequence(w.oid(EXT.cRLNumber), w.octetString(crlNumberDer(p.crlNumber))),
    ),
  )
  const entries = p.revoked.map(entryDer)
  return w.sequence(
    VERSION_2,
    signatureAlgorithmDer(type),
    ca.subjectDer,
    w.x509TimeDer(thisUpdate),
    w.x509TimeDer(nextUpdate),
    // An empty revokedCertificates SEQUENCE is not allowed: omit the field (§5.1.2.6).
    ...(entries.length > 0 ? [w.tlvOf(0x30, entries)] : []),
    extensions,
  )
}

/**
 * Builds and signs a v2 CRL (RFC 5280 §5) for the issuing CA; returns DER. CRL extensions:
 * authorityKeyIdentifier and cRLNumber, both non-critical. `lint` (lint.ts) checks the TBS
 * before it is signed.
 */
export function buildCrl(p: CrlParams, lint?: (tbs: Uint8Array) => void): Uint8Array {
  const tbs = crlTbs(p)
  lint?.(tbs)
  const type = requireKeyType(p.issuer.privateKey)
  const algorithm = signatureAlgorithmDer(type)
  const signature = sign(hashFor(type), tbs, p.issuer.privateKey)
  return w.sequence(tbs, algorithm, w.bitString(signature))
}
