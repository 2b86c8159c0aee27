import { createHash } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'

import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

import { decodeDer, toBytes } from './der.js'
import { ACCESS_METHOD, EXT } from './oids.js'

// Encoders and decoders for the handful of RFC 5280 extensions certbound writes or reads.

function extension(
  id: string,
  critical: boolean,
  value: { toBER(): ArrayBuffer },
): pkijs.Extension {
  return new pkijs.Extension({ extnID: id, critical, extnValue: value.toBER() })
}

/** basicConstraints (§4.2.1.9). cA FALSE is the DEFAULT, so DER leaves it out. */
export function basicConstraintsExt(
  ca: boolean,
  pathLen?: number,
  critical = true,
): pkijs.Extension {
  const bc = new pkijs.BasicConstraints(
    pathLen === undefined ? { cA: ca } : { cA: ca, pathLenConstraint: pathLen },
  )
  return extension(EXT.basicConstraints, critical, bc.toSchema())
}

// KeyUsage ::= BIT STRING { digitalSignature (0), ..., keyEncipherment (2), ..., keyCertSign (5),
// cRLSign (6), ... } (§4.2.1.3).
export const KEY_USAGE = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyCertSign: 5,
  cRLSign: 6,
} as const
/** A keyUsage bit certbound sets. */
export type KeyUsageName = keyof typeof KEY_USAGE

/** The keyUsage named bit list: DER drops trailing zero bits (X.690 §11.2.2). */
export function keyUsageBits(usages: readonly KeyUsageName[]): {
  bytes: Uint8Array
  unusedBits: number
} {
  if (usages.length === 0) throw new TypeError('keyUsage needs at least one bit')
  const bits = usages.map((u) => KEY_USAGE[u])
  const highest = Math.max(...bits)
  const bytes = new Uint8Array(Math.floor(highest / 8) + 1)
  for (const bit of bits) bytes[bit >> 3]! |= 0x80 >> (bit & 7)
  return { bytes, unusedBits: 7 - (highest % 8) }
}

/** keyUsage (§4.2.1.3); conforming CAs mark it critical. */
export function keyUsageExt(usages: readonly KeyUsageName[], critical = true): pkijs.Extension {
  const { bytes, unusedBits } = keyUsageBits(usages)
  return extension(EXT.keyUsage, critical, new asn1js.BitString({ valueHex: bytes, unusedBits }))
}

/** extendedKeyUsage (§4.2.1.12), non-critical unless told. */
export function extKeyUsageExt(purposes: readonly string[], critical = false): pkijs.Extension {
  return extension(
    EXT.extKeyUsage,
    critical,
    new pkijs.ExtKeyUsage({ keyPurposes: [...purposes] }).toSchema(),
  )
}

/** authorityInfoAccess (§4.2.2.1): OCSP URLs first, then caIssuers; MUST be non-critical. */
export function authorityInfoAccessExt(aia: {
  readonly ocsp: readonly string[]
  readonly caIssuers: readonly string[]
}): pkijs.Extension {
  const describe = (method: string, url: string) =>
    new pkijs.AccessDescription({
      accessMethod: method,
      accessLocation: new pkijs.GeneralName({ type: 6, value: ia5(url, 'AIA URL') }),
    })
  const accessDescriptions = [
    ...aia.ocsp.map((u) => describe(ACCESS_METHOD.ocsp, u)),
    ...aia.caIssuers.map((u) => describe(ACCESS_METHOD.caIssuers, u)),
  ]
  return extension(
    EXT.authorityInfoAccess,
    false,
    new pkijs.InfoAccess({ accessDescriptions }).toSchema(),
  )
}

/**
 * cRLDistributionPoints (§4.2.1.13): one DistributionPoint whose fullName lists the URLs (the
 * same CRL at each), no reasons, no cRLIssuer. Non-critical.
 */
export function crlDistributionPointsExt(urls: readonly string[]): pkijs.Extension {
  const point = new pkijs.DistributionPoint({
    distributionPoint: urls.map(
      (u) => new pkijs.GeneralName({ type: 6, value: ia5(u, 'CRL distribution point URL') }),
    ),
  })
  return extension(
    EXT.cRLDistributionPoints,
    false,
    new pkijs.CRLDistributionPoints({ distributionPoints: [point] }).toSchema(),
  )
}

/** id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): extnValue is a NULL. Non-critical. */
export function ocspNoCheckExt(): pkijs.Extension {
  return extension(EXT.ocspNoCheck, false, new asn1js.Null())
}

/** The subjectAltName forms certbound uses (URI, DNS, IP, rfc822). */
export interface SanNames {
  readonly uris: readonly string[]
  readonly dnsNames: readonly string[]
  readonly ipAddresses: readonly string[]
  readonly emails: readonly string[]
}

/** Checks an IA5String value (SAN, URL): printable ASCII only. */
export function ia5(value: string, what: string): string {
  // IA5String is 7-bit ASCII; asn1js would silently truncate anything else to one byte.
  if (typeof value !== 'string' || value.length === 0 || !/^[\x20-\x7e]+$/.test(value)) {
    throw new TypeError(`${what} must be non-empty printable ASCII: ${JSON.stringify(value)}`)
  }
  return value
}

/** subjectAltName (§4.2.1.6); critical only when the subject is empty. */
export function subjectAltNameExt(names: Partial<SanNames>, critical: boolean): pkijs.Extension {
  const altNames = [
    ...(names.uris ?? []).map((v) => new pkijs.GeneralName({ type: 6, value: ia5(v, 'URI SAN') })),
    ...(names.dnsNames ?? []).map(
      (v) => new pkijs.GeneralName({ type: 2, value: ia5(v, 'DNS SAN') }),
    ),
    ...(names.emails ?? []).map(
      (v) => new pkijs.GeneralName({ type: 1, value: ia5(v, 'email SAN') }),
    ),
    ...(names.ipAddresses ?? []).map(
      (v) =>
        new pkijs.GeneralName({
          type: 7,
          value: new asn1js.OctetString({ valueHex: ipToBytes(v) }),
        }),
    ),
  ]
  return extension(EXT.subjectAltName, critical, new pkijs.AltName({ altNames }).toSchema())
}

/**
 * Key identifier per RFC 7093 §2 method 1: the leftmost 160 bits of the SHA-256 of the
 * subjectPublicKey BIT STRING value. Used for SKI and, copied from the issuer, for AKI.
 */
export function keyIdentifier(spkiDer: Uint8Array): Uint8Array {
  const spki = new pkijs.PublicKeyInfo({ schema: decodeDer(spkiDer, 'SubjectPublicKeyInfo') })
  const key = spki.subjectPublicKey.valueBlock.valueHexView
  return new Uint8Array(createHash('sha256').update(key).digest().subarray(0, 20))
}

/** subjectKeyIdentifier (§4.2.1.2), non-critical. */
export function subjectKeyIdExt(keyId: Uint8Array): pkijs.Extension {
  return extension(EXT.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: keyId }))
}

/** authorityKeyIdentifier (§4.2.1.1) with keyIdentifier only, non-critical. */
export function authorityKeyIdExt(keyId: Uint8Array): pkijs.Extension {
  const aki = new pkijs.AuthorityKeyIdentifier({
    keyIdentifier: new asn1js.OctetString({ valueHex: keyId }),
  })
  return extension(EXT.authorityKeyIdentifier, false, aki.toSchema())
}

/** cRLNumber (§5.2.3): non-critical, a non-negative INTEGER of at most 20 octets. */
export function crlNumberExt(n: bigint): pkijs.Extension {
  if (n < 0n || n >= 1n << 159n) throw new TypeError('cRLNumber must be in 0..2^159-1')
  return extension(EXT.cRLNumber, false, asn1js.Integer.fromBigInt(n))
}

/** reasonCode CRL entry extension (§5.3.1), non-critical ENUMERATED. */
export function reasonCodeExt(code: number): pkijs.Extension {
  return extension(EXT.reasonCode, false, new asn1js.Enumerated({ value: code }))
}

// --- decoding ---------------------------------------------------------------------------------

function valueOf(ext: pkijs.Extension, what: string): asn1js.AsnType {
  return decodeDer(ext.extnValue.valueBlock.valueHexView, what)
}

/** URI, DNS, IP and email names of a SAN extension; other GeneralName forms are skipped. */
export function readSubjectAltName(ext: pkijs.Extension): SanNames {
  const alt = new pkijs.AltName({ schema: valueOf(ext, 'subjectAltName') })
  const out = {
    uris: [] as string[],
    dnsNames: [] as string[],
    ipAddresses: [] as string[],
    emails: [] as string[],
  }
  for (const name of alt.altNames) {
    // Other forms (otherName, directoryName, ...) are skipped: the CA never copies them.
    if (name.type === 6) out.uris.push(String(name.value))
    else if (name.type === 2) out.dnsNames.push(String(name.value))
    else if (name.type === 1) out.emails.push(String(name.value))
    else if (name.type === 7) {
      out.ipAddresses.push(bytesToIp((name.value as asn1js.OctetString).valueBlock.valueHexView))
    }
  }
  return out
}

/** cA flag and pathLenConstraint of a basicConstraints extension. */
export function readBasicConstraints(ext: pkijs.Extension): { ca: boolean; pathLen?: number } {
  const bc = new pkijs.BasicConstraints({ schema: valueOf(ext, 'basicConstraints') })
  const pathLen = typeof bc.pathLenConstraint === 'number' ? bc.pathLenConstraint : undefined
  return pathLen === undefined ? { ca: bc.cA } : { ca: bc.cA, pathLen }
}

/** The key identifier carried in a subjectKeyIdentifier extension. */
export function readSubjectKeyId(ext: pkijs.Extension): Uint8Array {
  const value = valueOf(ext, 'subjectKeyIdentifier')
  if (!(value instanceof asn1js.OctetString)) {
    throw new Error('subjectKeyIdentifier: not an OCTET STRING')
  }
  return toBytes(value.valueBlock.valueHexView)
}

// --- IP addresses (SAN iPAddress is 4 or 16 octets, §4.2.1.6) ---------------------------------

/** IPv4 dotted quad or IPv6 text → 4 or 16 octets. */
export function ipToBytes(ip: string): Uint8Array {
  if (isIPv4(ip)) return Uint8Array.from(ip.split('.').map(Number))
  if (!isIPv6(ip) || ip.includes('%')) {
    throw new TypeError(`not an IP address: ${JSON.stringify(ip)}`)
  }
  let text = ip
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    // Embedded IPv4 (::ffff:1.2.3.4) becomes the last two 16-bit groups.
    const b = v4[1]!.split('.').map(Number)
    const hi = ((b[0]! << 8) | b[1]!).toString(16)
    const lo = ((b[2]! << 8) | b[3]!).toString(16)
    text = `${text.slice(0, v4.index)}${hi}:${lo}`
  }
  const [head = '', tail] = text.split('::')
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'))
  const h = groups(head)
  const t = tail === undefined ? [] : groups(tail)
  const all =
    tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  const out = new Uint8Array(16)
  all.forEach((g, i) => {
    const n = parseInt(g, 16)
    out[i * 2] = n >> 8
    out[i * 2 + 1] = n & 0xff
  })
  return out
}

/** 4 or 16 octets → dotted quad or RFC 5952 canonical IPv6 text. */
export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.')
  if (bytes.length !== 16) {
    throw new Error(`iPAddress SAN must be 4 or 16 octets, got ${bytes.length}`)
  }
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[i * 2]! << 8) | bytes[i * 2 + 1]!)
  // RFC 5952 §4.2: compress the longest run (≥ 2) of zero groups, the first one on a tie.
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) [best, bestLen] = [i, j - i]
    i = j === i ? i + 1 : j
  }
  const hex = groups.map((g) => g.toString(16))
  if (best === -1) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}
