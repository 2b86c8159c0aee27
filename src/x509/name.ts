import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

import { decodeDer, encode } from './der.js'
import { ATTR } from './oids.js'

/** The subject attributes the CA sets itself (never copied from a CSR). */
export interface SubjectName {
  readonly organization?: string | undefined
  readonly commonName?: string | undefined
}

/**
 * Builds a Name (RFC 5280 §4.1.2.4) with each attribute in its own RDN, as every CA does.
 * pkijs trap: `new RelativeDistinguishedNames({ typesAndValues })` encodes all attributes into
 * one multi-valued RDN (`O=x+CN=y`), so we encode the RDNSequence ourselves and hand pkijs the
 * decoded bytes, which it then re-emits verbatim.
 */
export function buildName(subject: SubjectName): pkijs.RelativeDistinguishedNames {
  const rdns: asn1js.Set[] = []
  const add = (type: string, value: string | undefined): void => {
    if (value === undefined) return
    if (typeof value !== 'string' || value.length === 0) {
      throw new TypeError(`subject attribute ${type} must be a non-empty string`)
    }
    const atv = new asn1js.Sequence({
      value: [new asn1js.ObjectIdentifier({ value: type }), new asn1js.Utf8String({ value })],
    })
    rdns.push(new asn1js.Set({ value: [atv] }))
  }
  // Conventional order, most significant first: O before CN.
  add(ATTR.organizationName, subject.organization)
  add(ATTR.commonName, subject.commonName)
  return nameFromDer(encode(new asn1js.Sequence({ value: rdns })))
}

/** A Name from its DER; pkijs keeps the original bytes, so it is re-encoded unchanged. */
export function nameFromDer(der: Uint8Array): pkijs.RelativeDistinguishedNames {
  return new pkijs.RelativeDistinguishedNames({ schema: decodeDer(der, 'Name') })
}

/** The DER bytes a Name will be encoded as. */
export function nameToDer(name: pkijs.RelativeDistinguishedNames): Uint8Array {
  return encode(name.toSchema())
}

/** True when the Name has no RDNs (then SAN must be critical, RFC 5280 §4.2.1.6). */
export function isEmptyName(name: pkijs.RelativeDistinguishedNames): boolean {
  return name.typesAndValues.length === 0
}
