import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

import { x509Time } from './der.js'
import { authorityKeyIdExt, crlNumberExt, keyIdentifier, reasonCodeExt } from './extensions.js'
import { issuerView } from './certificate.js'
import type { Issuer } from './certificate.js'
import { nameFromDer } from './name.js'
import { serialFromHex } from './serial.js'
import { signStructure } from './signing.js'

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

function revokedCertificate(entry: RevokedEntry): pkijs.RevokedCertificate {
  const code = REASON_CODES[entry.reason]
  if (code === undefined) throw new TypeError(`unknown revocation reason ${String(entry.reason)}`)
  const revoked = new pkijs.RevokedCertificate({
    userCertificate: new asn1js.Integer({ valueHex: serialFromHex(entry.serialHex) }),
    revocationDate: x509Time(entry.revokedAt),
  })
  // RFC 5280 §5.3.1: the reasonCode SHOULD be absent rather than say "unspecified".
  if (code !== REASON_CODES.unspecified) {
    revoked.crlEntryExtensions = new pkijs.Extensions({ extensions: [reasonCodeExt(code)] })
  }
  return revoked
}

/**
 * Builds and signs a v2 CRL (RFC 5280 §5) for the issuing CA; returns DER. CRL extensions:
 * authorityKeyIdentifier (MUST, §5.2.1) and cRLNumber (MUST, §5.2.3), both non-critical.
 */
export function buildCrl(p: CrlParams): Uint8Array {
  const ca = issuerView(p.issuer)
  const thisUpdate = x509Time(p.thisUpdate)
  const nextUpdate = x509Time(p.nextUpdate)
  if (nextUpdate.value.getTime() <= thisUpdate.value.getTime()) {
    throw new TypeError('nextUpdate must be after thisUpdate')
  }
  const crl = new pkijs.CertificateRevocationList({
    version: 1, // v2
    issuer: nameFromDer(ca.subjectDer),
    thisUpdate,
    nextUpdate,
    crlExtensions: new pkijs.Extensions({
      extensions: [
        authorityKeyIdExt(ca.subjectKeyId ?? keyIdentifier(ca.spkiDer)),
        crlNumberExt(p.crlNumber),
      ],
    }),
  })
  // An empty revokedCertificates SEQUENCE is not allowed: omit the field instead (§5.1.2.6).
  if (p.revoked.length > 0) crl.revokedCertificates = p.revoked.map(revokedCertificate)
  return signStructure(crl, p.issuer.privateKey)
}
