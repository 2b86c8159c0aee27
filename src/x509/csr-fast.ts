import { createPublicKey } from 'node:crypto'
import type { JsonWebKey, KeyObject } from 'node:crypto'

import { spkiDer as exportSpki } from '../crypto/keys.js'
import {
  childrenOf,
  contentOf,
  expectTag,
  NotDerError,
  oidText,
  readDer,
  UnhandledError,
} from './der-reader.js'
import type { Tlv } from './der-reader.js'
import {
  emptyNames,
  importSpki,
  invalid,
  parsedCsr,
  supportedKeyType,
  type CsrNames,
  type ParsedCsr,
} from './csr-common.js'
import { bytesToIp } from './extensions.js'
import { EXT, EXTENSION_REQUEST, KEY_ALG } from './oids.js'
import { checkSignature } from './signing.js'
import { rememberSpki } from './spki.js'

// The fast PKCS#10 reader (RFC 2986 §4): a strict DER walk, no asn1js/pkijs objects.
//   CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature }
//   CertificationRequestInfo ::= SEQUENCE { version INTEGER, subject Name,
//     subjectPKInfo SubjectPublicKeyInfo, attributes [0] IMPLICIT SET OF Attribute }
// readDer throws NotDerError (not minimal DER: refused) or UnhandledError (a shape not modelled
// here: undefined, and the pkijs reader decides). Every other refusal uses the same code and
// message as the pkijs reader, in the same order: version, key, signature, extensions.

const CURVES: Readonly<Record<string, { crv: string; size: number }>> = {
  '1.2.840.10045.3.1.7': { crv: 'P-256', size: 32 },
  '1.3.132.0.34': { crv: 'P-384', size: 48 },
}

interface Parts {
  readonly cri: Tlv
  readonly spki: Tlv
  readonly attributes: readonly Tlv[]
  readonly signatureAlgorithm: string
  readonly signature: Uint8Array
}

function algorithmOf(der: Uint8Array, alg: Tlv): { id: string; params: Tlv | undefined } {
  const kids = childrenOf(der, expectTag(alg, 0x30, 'AlgorithmIdentifier'))
  if (kids.length < 1 || kids.length > 2) throw new UnhandledError('AlgorithmIdentifier shape')
  return { id: oidText(der, kids[0]!), params: kids[1] }
}

/** A Name is SEQUENCE OF SET OF SEQUENCE { type OID, value ANY } (RFC 5280 §4.1.2.4). */
function checkName(der: Uint8Array, name: Tlv): void {
  for (const rdn of childrenOf(der, expectTag(name, 0x30, 'Name'))) {
    const atvs = childrenOf(der, expectTag(rdn, 0x31, 'RDN'))
    if (atvs.length === 0) throw new UnhandledError('empty RDN')
    for (const atv of atvs) {
      const kids = childrenOf(der, expectTag(atv, 0x30, 'AttributeTypeAndValue'))
      if (kids.length !== 2) throw new UnhandledError('AttributeTypeAndValue shape')
      oidText(der, kids[0]!)
    }
  }
}

function split(der: Uint8Array): Parts {
  const top = readDer(der)
  const outer = childrenOf(der, expectTag(top, 0x30, 'CertificationRequest'))
  if (outer.length !== 3) throw new UnhandledError('CertificationRequest shape')
  const cri = expectTag(outer[0], 0x30, 'CertificationRequestInfo')
  const sig = expectTag(outer[2], 0x03, 'signature BIT STRING')
  if (der[sig.start] !== 0) throw new UnhandledError('signature with unused bits')
  const info = childrenOf(der, cri)
  if (info.length !== 4) throw new UnhandledError('CertificationRequestInfo shape')
  const version = expectTag(info[0], 0x02, 'version')
  if (version.end - version.start !== 1) throw new UnhandledError('large version')
  const v = (der[version.start]! << 24) >> 24
  checkName(der, info[1]!)
  const spki = expectTag(info[2], 0x30, 'SubjectPublicKeyInfo')
  const spkiKids = childrenOf(der, spki)
  if (spkiKids.length !== 2) throw new UnhandledError('SubjectPublicKeyInfo shape')
  algorithmOf(der, spkiKids[0]!)
  expectTag(spkiKids[1], 0x03, 'subjectPublicKey')
  const attributes = childrenOf(der, expectTag(info[3], 0xa0, 'attributes'))
  for (const a of attributes) {
    const kids = childrenOf(der, expectTag(a, 0x30, 'Attribute'))
    if (kids.length !== 2) throw new UnhandledError('Attribute shape')
    oidText(der, kids[0]!)
    expectTag(kids[1], 0x31, 'Attribute values')
  }
  const signatureAlgorithm = algorithmOf(der, outer[1]!).id
  // Checked after the whole structure, as the pkijs reader does.
  if (v !== 0) throw invalid(`CSR version ${v} is not v1 (0)`)
  return {
    cri,
    spki,
    attributes,
    signatureAlgorithm,
    signature: der.subarray(sig.start + 1, sig.end),
  }
}

/**
 * The public key. Canonical encodings of the supported key types are already node's SPKI; they
 * are imported through JWK (OpenSSL's DER decoder costs 2-15x more), except P-384, whose JWK
 * import runs a full public-key check (a P-384 scalar multiplication, ~5x the DER import) that
 * the DER import does not need: both reject a point off the curve. Anything else takes the
 * general import, exactly as the pkijs reader does.
 */
function importKey(der: Uint8Array, spki: Tlv): { publicKey: KeyObject; spkiDer: Uint8Array } {
  const [algTlv, keyTlv] = childrenOf(der, spki) as [Tlv, Tlv]
  const alg = algorithmOf(der, algTlv)
  const bits = der.subarray(keyTlv.start + 1, keyTlv.end)
  const bytes = der.slice(spki.offset, spki.end)
  const jwk = der[keyTlv.start] === 0 ? canonicalJwk(der, alg, bits) : undefined
  if (jwk === undefined) {
    const publicKey = importSpki(bytes, alg.id)
    return { publicKey, spkiDer: exportSpki(publicKey) }
  }
  let publicKey: KeyObject
  if (jwk.crv === 'P-384') publicKey = importSpki(bytes, alg.id)
  else {
    try {
      publicKey = createPublicKey({ key: jwk, format: 'jwk' })
    } catch (e) {
      throw invalid('CSR public key is malformed', e) // e.g. an EC point off the curve
    }
  }
  rememberSpki(publicKey, bytes.slice())
  return { publicKey, spkiDer: bytes }
}

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url')

function canonicalJwk(
  der: Uint8Array,
  alg: { id: string; params: Tlv | undefined },
  bits: Uint8Array,
): JsonWebKey | undefined {
  if (alg.id === KEY_ALG.ecPublicKey && alg.params?.tag === 0x06) {
    const curve = CURVES[oidText(der, alg.params)]
    // Uncompressed point only (RFC 5480 §2.2: the form node exports).
    if (!curve || bits.length !== 1 + 2 * curve.size || bits[0] !== 0x04) return undefined
    const x = b64u(bits.subarray(1, 1 + curve.size))
    return { kty: 'EC', crv: curve.crv, x, y: b64u(bits.subarray(1 + curve.size)) }
  }
  if (alg.id === KEY_ALG.ed25519 && alg.params === undefined && bits.length === 32) {
    return { kty: 'OKP', crv: 'Ed25519', x: b64u(bits) }
  }
  if (alg.id === KEY_ALG.rsaEncryption && alg.params?.tag === 0x05) {
    // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1)
    const top = readDer(bits)
    const kids = childrenOf(bits, expectTag(top, 0x30, 'RSAPublicKey'))
    if (kids.length !== 2) return undefined
    const [n, e] = kids.map((k) => expectTag(k, 0x02, 'RSA INTEGER'))
    const unsigned = (t: Tlv): Uint8Array | undefined => {
      if (bits[t.start]! & 0x80) return undefined // negative
      return bits.subarray(bits[t.start] === 0 ? t.start + 1 : t.start, t.end)
    }
    const nb = unsigned(n!)
    const eb = unsigned(e!)
    if (!nb || !eb || nb.length === 0 || eb.length === 0) return undefined
    return { kty: 'RSA', n: b64u(nb), e: b64u(eb) }
  }
  return undefined
}

/** The Extensions of the single extensionRequest attribute (RFC 2985 §5.4.2), by id. */
function requestedExtensions(der: Uint8Array, attributes: readonly Tlv[]): Map<string, Tlv> {
  const out = new Map<string, Tlv>()
  let found: Tlv | undefined // the values SET of the extensionRequest attribute
  let count = 0
  for (const a of attributes) {
    const [type, values] = childrenOf(der, a) as [Tlv, Tlv]
    if (oidText(der, type) === EXTENSION_REQUEST && count++ === 0) found = values
  }
  if (found === undefined) return out
  const values = childrenOf(der, found)
  if (count > 1 || values.length !== 1) {
    throw invalid('CSR extensionRequest must appear once, with one value')
  }
  for (const e of childrenOf(der, expectTag(values[0], 0x30, 'Extensions'))) {
    const kids = childrenOf(der, expectTag(e, 0x30, 'Extension'))
    // critical DEFAULT FALSE: DER leaves it out, so a present one must be TRUE.
    const critical = kids.length === 3 ? expectTag(kids[1], 0x01, 'critical') : undefined
    if (kids.length !== 2 && (critical === undefined || der[critical.start] !== 0xff)) {
      throw new UnhandledError('Extension shape')
    }
    const id = oidText(der, kids[0]!)
    if (out.has(id)) throw invalid(`CSR requests extension ${id} more than once`)
    out.set(id, expectTag(kids[kids.length - 1], 0x04, 'extnValue'))
  }
  return out
}

/** A TLV's content octets as latin1 text (one character per octet, as pkijs reads IA5). */
function latin1(buf: Uint8Array, t: Tlv): string {
  let s = ''
  for (let i = t.start; i < t.end; i++) s += String.fromCharCode(buf[i]!)
  return s
}

/** URI, DNS, rfc822 and IP names (RFC 5280 §4.2.1.6); any other form: the pkijs reader. */
function readSan(value: Uint8Array, names: CsrNames): void {
  for (const g of childrenOf(value, expectTag(readDer(value), 0x30, 'GeneralNames'))) {
    if (g.tag === 0x86) names.uris.push(latin1(value, g))
    else if (g.tag === 0x82) names.dnsNames.push(latin1(value, g))
    else if (g.tag === 0x81) names.emails.push(latin1(value, g))
    else if (g.tag === 0x87 && (g.end - g.start === 4 || g.end - g.start === 16)) {
      names.ipAddresses.push(bytesToIp(contentOf(value, g)))
    } else throw new UnhandledError('GeneralName form')
  }
}

/** cA of a basicConstraints value: SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLen INTEGER OPT } */
function readCa(value: Uint8Array): boolean {
  const kids = childrenOf(value, expectTag(readDer(value), 0x30, 'BasicConstraints'))
  const ca = kids[0]?.tag === 0x01 ? kids.shift()! : undefined
  if (kids.length > 1 || (kids[0] && kids[0].tag !== 0x02)) throw new UnhandledError('BC shape')
  if (ca && value[ca.start] !== 0xff) throw new UnhandledError('explicit cA FALSE')
  return ca !== undefined
}

/**
 * Reads and verifies a DER CSR without pkijs. Returns undefined for valid DER of a shape it
 * does not model (then the pkijs reader decides); throws CAError like the pkijs reader, and
 * ERR_CSR_INVALID for anything that is not minimal DER (which the pkijs reader, a BER reader,
 * may accept).
 */
export function readCsrFast(der: Uint8Array): ParsedCsr | undefined {
  try {
    const parts = split(der)
    const key = importKey(der, parts.spki)
    const keyType = supportedKeyType(key.publicKey)
    const failure = checkSignature(
      parts.signatureAlgorithm,
      key.publicKey,
      der.subarray(parts.cri.offset, parts.cri.end),
      parts.signature,
      keyType,
    )
    if (failure !== undefined) throw invalid(`CSR ${failure}`)
    const names = emptyNames()
    let requestsCA = false
    for (const [id, value] of requestedExtensions(der, parts.attributes)) {
      if (id === EXT.subjectAltName) readSan(contentOf(der, value), names)
      else if (id === EXT.basicConstraints) requestsCA = readCa(contentOf(der, value))
    }
    return parsedCsr(der, { ...key, keyType }, names, requestsCA)
  } catch (e) {
    if (e instanceof UnhandledError) return undefined
    if (e instanceof NotDerError) throw invalid(`CSR is not minimal DER: ${e.message}`, e)
    throw e
  }
}
