import type { KeyType } from '../crypto/keys.js'
import { ascii, oid, octetString, sequence, setOf, smallInteger } from './der-writer.js'
import { EXT, EXTENSION_REQUEST, KEY_ALG } from './oids.js'

// The EST CSR Attributes response (RFC 7030 §4.5.2, as clarified by RFC 9908):
//
//   CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
//   AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
//   Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET SIZE(1..MAX) OF ANY }
//
// What certbound asks of a CSR: a key of an allowed type (RFC 9908 §3.3: an Attribute whose
// type is the public-key algorithm, valued with the EC curves or RSA modulus sizes, or the
// bare algorithm OID for Ed25519, which has no parameters), and the SPIFFE ID as a URI SAN.
// The SAN is named with its value in an extensionRequest attribute (RFC 9908 §3.2) when the
// server knows the caller's identity; otherwise by the subjectAltName OID alone, since the
// CA takes the identity from the entry and an unauthenticated caller learns no SPIFFE ID here.

const CURVES: Partial<Record<KeyType, string>> = {
  'ec-p256': '1.2.840.10045.3.1.7', // prime256v1, RFC 5480 §2.1.1.1
  'ec-p384': '1.3.132.0.34', // secp384r1
}
const RSA_BITS: Partial<Record<KeyType, number>> = {
  'rsa-2048': 2048,
  'rsa-3072': 3072,
  'rsa-4096': 4096,
}

const attribute = (type: string, values: readonly Uint8Array[]) =>
  sequence(oid(type), setOf(values))

/** The DER CsrAttrs for the allowed key types and, when known, the caller's SPIFFE ID. */
export function csrAttributes(opts: {
  readonly keyTypes: readonly KeyType[]
  readonly spiffeId?: string
}): Uint8Array {
  const items: Uint8Array[] = []
  const curves = opts.keyTypes.flatMap((k) => (CURVES[k] ? [oid(CURVES[k])] : []))
  if (curves.length > 0) items.push(attribute(KEY_ALG.ecPublicKey, curves))
  const sizes = opts.keyTypes.flatMap((k) => (RSA_BITS[k] ? [smallInteger(RSA_BITS[k])] : []))
  if (sizes.length > 0) items.push(attribute(KEY_ALG.rsaEncryption, sizes))
  if (opts.keyTypes.includes('ed25519')) items.push(oid(KEY_ALG.ed25519))
  if (opts.spiffeId === undefined) {
    items.push(oid(EXT.subjectAltName))
  } else {
    // Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }; the
    // value is GeneralNames with one uniformResourceIdentifier [6] (RFC 5280 §4.2.1.6).
    const san = sequence(ascii(0x86, opts.spiffeId))
    const extension = sequence(oid(EXT.subjectAltName), octetString(san))
    items.push(attribute(EXTENSION_REQUEST, [sequence(extension)]))
  }
  return sequence(...items)
}
