import type { KeyObject } from 'node:crypto'

import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

import { requireKeyType, signWithKey, spkiDer } from '../crypto/keys.js'
import { decodeDer, encode } from './der.js'
import { subjectAltNameExt } from './extensions.js'
import { buildName } from './name.js'
import { EXTENSION_REQUEST } from './oids.js'
import { derToPem } from './pem.js'
import { signatureAlgorithmFor } from './signing.js'

/** What `buildCsr` puts in a PKCS#10 request. */
export interface CsrParams {
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
  /** URI SANs, e.g. the SPIFFE ID. */
  readonly uris: readonly string[]
  readonly dnsNames?: readonly string[]
  /** Subject CN. Default: none (an empty subject; the CA builds the subject itself anyway). */
  readonly commonName?: string
}

// RFC 2986 §4.1:
//   CertificationRequestInfo ::= SEQUENCE {
//     version       INTEGER { v1(0) },
//     subject       Name,
//     subjectPKInfo SubjectPublicKeyInfo,
//     attributes    [0] IMPLICIT SET OF Attribute }
//   CertificationRequest ::= SEQUENCE {
//     certificationRequestInfo CertificationRequestInfo,
//     signatureAlgorithm       AlgorithmIdentifier,
//     signature                BIT STRING }
// RFC 2985 §5.4.2: extensionRequest ATTRIBUTE ::= { WITH SYNTAX ExtensionRequest } where
//   ExtensionRequest ::= Extensions

/**
 * Builds and signs a PKCS#10 certificate request (PEM) for a key pair generated locally: only
 * the public key and the requested names leave the machine. The SANs travel in an
 * extensionRequest attribute; with an empty subject the SAN is marked critical (RFC 5280
 * §4.2.1.6). Signed with node:crypto: SHA-256 for P-256/RSA, SHA-384 for P-384, pure EdDSA.
 */
export function buildCsr(params: CsrParams): string {
  const { privateKey, publicKey, uris, dnsNames = [], commonName } = params
  if (privateKey.type !== 'private') throw new TypeError('buildCsr needs a private key')
  if (publicKey.type !== 'public') throw new TypeError('buildCsr needs a public key')
  const type = requireKeyType(privateKey)
  const spki = spkiDer(publicKey)
  if (Buffer.compare(spki, spkiDer(privateKey)) !== 0) {
    throw new TypeError('buildCsr: the public key does not belong to the private key')
  }
  const subject = buildName({ commonName })
  const attributes: pkijs.Attribute[] = []
  if (uris.length + dnsNames.length > 0) {
    const san = subjectAltNameExt({ uris, dnsNames }, commonName === undefined)
    const extensions = new pkijs.Extensions({ extensions: [san] })
    attributes.push(
      new pkijs.Attribute({ type: EXTENSION_REQUEST, values: [extensions.toSchema()] }),
    )
  }
  const csr = new pkijs.CertificationRequest({
    version: 0,
    subject,
    subjectPublicKeyInfo: new pkijs.PublicKeyInfo({ schema: decodeDer(spki, 'SPKI') }),
    attributes,
  })
  csr.signatureAlgorithm = signatureAlgorithmFor(type)
  // encodeTBS() is protected in the pkijs typings; toSchema(true) re-encodes the TBS too.
  const tbs = csr.toSchema(true).valueBlock.value[0]
  if (!tbs) throw new Error('pkijs produced no CertificationRequestInfo')
  csr.tbsView = encode(tbs)
  csr.signatureValue = new asn1js.BitString({ valueHex: signWithKey(privateKey, csr.tbsView) })
  // toSchema(false) re-uses the TBS bytes just signed.
  return derToPem(encode(csr.toSchema(false)), 'CERTIFICATE REQUEST')
}
