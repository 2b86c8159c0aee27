import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

import { x509Time } from './der.js'
import { authorityKeyIdExt, crlNumberExt, keyIdentifier, reasonCodeExt } from './extensions.js'
import { issuerView } from './certificate.js'
import { nameFromDer } from './name.js'
import { serialFromHex } from './serial.js'
import { signStructure } from './signing.js'
import { REASON_CODES, type CrlParams, type RevokedEntry } from './crl.js'

// The reference CRL encoder (pkijs): the fast one in crl.ts must produce the same TBS byte for
// byte (test/unit/x509/crl-fast.test.ts). asn1js refuses to decode or build more than a few
// thousand nodes by default, so this one is for small CRLs and tests only.

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

function crlObject(p: CrlParams): pkijs.CertificateRevocationList {
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
  return crl
}

/** Builds and signs a v2 CRL with pkijs (the reference encoder); returns DER. */
export function buildCrlPkijs(p: CrlParams): Uint8Array {
  return signStructure(crlObject(p), p.issuer.privateKey)
}

/** The DER TBSCertList pkijs encodes for these params (after signStructure set the algorithm). */
export function crlTbsPkijs(p: CrlParams): Uint8Array {
  const der = buildCrlPkijs(p)
  const parsed = new pkijs.CertificateRevocationList({
    schema: asn1js.fromBER(der).result,
  })
  return new Uint8Array(parsed.tbsView)
}
