// A minimal DER writer (X.690 §8, §10-11) for the template encoder: definite minimal lengths,
// primitive strings, no indefinite forms. Every function returns one complete TLV.

/** Octets of a whole TLV with `n` content octets (definite minimal length, X.690 §10.1). */
export const tlvSize = (n: number): number =>
  n + (n < 0x80 ? 2 : n < 0x100 ? 3 : n < 0x1_0000 ? 4 : n < 0x100_0000 ? 5 : 6)

/**
 * Writes the identifier and length octets of a TLV with `n` content octets into `out` at `at`
 * and returns where the content goes: lets an encoder size a structure first and then write
 * it into one buffer, with no intermediate arrays.
 */
export function putHeader(out: Uint8Array, at: number, tag: number, n: number): number {
  out[at++] = tag
  if (n < 0x80) {
    out[at++] = n
    return at
  }
  const k = n < 0x100 ? 1 : n < 0x1_0000 ? 2 : n < 0x100_0000 ? 3 : 4
  out[at++] = 0x80 | k
  for (let i = k - 1; i >= 0; i--) out[at++] = (n >>> (8 * i)) & 0xff
  return at
}

/** Copies `bytes` into `out` at `at`; returns the offset after them. */
export function putBytes(out: Uint8Array, at: number, bytes: Uint8Array): number {
  out.set(bytes, at)
  return at + bytes.length
}

/** A TLV whose content is the concatenation of `parts`. */
export function tlv(tag: number, ...parts: readonly Uint8Array[]): Uint8Array {
  return tlvOf(tag, parts)
}

/** As `tlv`, with the parts as one array (no argument spread: a CRL has 100,000 of them). */
export function tlvOf(tag: number, parts: readonly Uint8Array[]): Uint8Array {
  let size = 0
  for (const p of parts) size += p.length
  const out = new Uint8Array(tlvSize(size))
  let at = putHeader(out, 0, tag, size)
  for (const p of parts) at = putBytes(out, at, p)
  return out
}

export const sequence = (...parts: readonly Uint8Array[]): Uint8Array => tlv(0x30, ...parts)

// The OIDs encoded are a fixed few (templates, CRLs, OCSP): each is encoded once.
const oidCache = new Map<string, Uint8Array>()

/** OBJECT IDENTIFIER from dotted text (X.690 §8.19): base-128 arcs, first two combined. */
export function oid(dotted: string): Uint8Array {
  let der = oidCache.get(dotted)
  if (der === undefined) {
    der = encodeOid(dotted)
    if (oidCache.size < 1024) oidCache.set(dotted, der)
  }
  return der.slice() // callers own what they get
}

function encodeOid(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((a) => BigInt(a))
  if (arcs.length < 2 || arcs[0]! > 2n) throw new TypeError(`bad OID ${dotted}`)
  const out: number[] = []
  for (const arc of [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]) {
    const chunk = [Number(arc & 0x7fn)]
    for (let v = arc >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80)
    out.push(...chunk)
  }
  return tlv(0x06, Uint8Array.from(out))
}

/** INTEGER from content octets the caller guarantees minimal (e.g. a checked serial). */
export const integerOf = (content: Uint8Array): Uint8Array => tlv(0x02, content)

/** A small non-negative INTEGER (pathLenConstraint). */
export function smallInteger(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0x7fff_ffff) throw new TypeError(`bad integer ${n}`)
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  if (bytes.length === 0 || bytes[0]! & 0x80) bytes.unshift(0)
  return tlv(0x02, Uint8Array.from(bytes))
}

export const octetString = (content: Uint8Array): Uint8Array => tlv(0x04, content)

/** BIT STRING with `unusedBits` trailing pad bits in the last octet (already zero). */
export const bitString = (content: Uint8Array, unusedBits = 0): Uint8Array =>
  tlv(0x03, Uint8Array.of(unusedBits), content)

export const TRUE = Uint8Array.of(0x01, 0x01, 0xff)
export const NULL = Uint8Array.of(0x05, 0x00)

export const utf8String = (value: string): Uint8Array => tlv(0x0c, Buffer.from(value, 'utf8'))

/** An IA5String-valued field under `tag` (e.g. [6] IMPLICIT for a URI GeneralName). */
export const ascii = (tag: number, value: string): Uint8Array =>
  tlv(tag, Buffer.from(value, 'latin1'))

/** Writes `n` (0..99) as two ASCII digits. */
function putTwo(out: Uint8Array, at: number, n: number): void {
  out[at] = 0x30 + Math.floor(n / 10)
  out[at + 1] = 0x30 + (n % 10)
}

/**
 * An X.509 Time (RFC 5280 §4.1.2.5): UTCTime YYMMDDHHMMSSZ for 1950-2049, else GeneralizedTime
 * YYYYMMDDHHMMSSZ; whole seconds (the caller has rounded). Digits written as bytes: two of these
 * go into every certificate.
 */
export function x509TimeDer(date: Date): Uint8Array {
  const y = date.getUTCFullYear()
  const utc = y >= 1950 && y < 2050
  if (!utc && (y < 0 || y > 9999)) throw new TypeError('year outside 0..9999')
  const out = new Uint8Array(utc ? 15 : 17)
  out[0] = utc ? 0x17 : 0x18
  out[1] = utc ? 13 : 15
  let at = 2
  if (!utc) {
    putTwo(out, at, Math.floor(y / 100))
    at += 2
  }
  for (const n of [
    y % 100,
    date.getUTCMonth() + 1,
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
  ]) {
    putTwo(out, at, n)
    at += 2
  }
  out[at] = 0x5a // 'Z'
  return out
}

/** Unsigned byte-wise order, shorter first on a common prefix (X.690 §11.6). */
function compareDer(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

/**
 * A DER SET OF (tag 0x31, or another such as [0] IMPLICIT): X.690 §11.6 puts the components in
 * ascending order of their encodings, whatever order the caller gives. Duplicates are kept once.
 */
export function setOf(parts: readonly Uint8Array[], tag = 0x31): Uint8Array {
  const sorted = [...parts].sort(compareDer)
  return tlv(tag, ...sorted.filter((p, i) => i === 0 || compareDer(p, sorted[i - 1]!) !== 0))
}
