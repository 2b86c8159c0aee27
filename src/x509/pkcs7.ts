import { oid, sequence, setOf, smallInteger, tlv } from './der-writer.js'

// A certs-only "degenerate" CMS SignedData (RFC 5652 §5; RFC 7030 §4.1.3 and §4.2.3 call it a
// certs-only Simple PKI Response, RFC 5272 §4.1): certificates and nothing else, no signer.
//
//   ContentInfo ::= SEQUENCE { contentType id-signedData, content [0] EXPLICIT SignedData }
//   SignedData ::= SEQUENCE {
//     version CMSVersion,                      -- 1 (RFC 5652 §5.1: id-data, only X.509 certs)
//     digestAlgorithms SET OF ...,             -- empty
//     encapContentInfo SEQUENCE { eContentType id-data },   -- no eContent
//     certificates [0] IMPLICIT CertificateSet, -- in the caller's order (below)
//     signerInfos SET OF ... }                 -- empty

const ID_SIGNED_DATA = '1.2.840.113549.1.7.2'
const ID_DATA = '1.2.840.113549.1.7.1'

/** DER of a certs-only PKCS#7 / CMS SignedData holding `certificates` (each DER). */
export function certsOnlyPkcs7(certificates: readonly Uint8Array[]): Uint8Array {
  if (certificates.length === 0) throw new TypeError('a certs-only PKCS#7 needs a certificate')
  for (const der of certificates) {
    if (der[0] !== 0x30) throw new TypeError('a certificate must be a DER SEQUENCE')
  }
  const signedData = sequence(
    smallInteger(1),
    setOf([]),
    sequence(oid(ID_DATA)),
    // CMS is BER (RFC 5652 §1): the certificates stay in the order given (issuing CA first),
    // as `openssl crl2pkcs7` writes them, for clients that read them as a chain.
    tlv(0xa0, ...certificates),
    setOf([]),
  )
  return sequence(oid(ID_SIGNED_DATA), tlv(0xa0, signedData))
}
