// A minimal DER writer (X.690 §8, §10-11) for the template encoder: definite minimal lengths,
// primitive strings, no indefinite forms. Every function returns one complete TLV.

/** DER length octets: short form below 128, else the minimal long form (X.690 §10.1). */
function lengthOctets(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n)
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Uint8Array.from([0x80 | bytes.length, ...bytes])
}

/** A TLV whose content is the concatenation of `parts`. */
export function tlv(tag: number, ...parts: readonly Uint8Array[]): Uint8Array {
  return tlvOf(tag, parts)
}

/** As `tlv`, with the parts as one array (no argument spread: a CRL has 100,000 of them). */
export function tlvOf(tag: number, parts: readonly Uint8Array[]): Uint8Array {
  let size = 0
  for (const p of parts) size += p.length
  const len = lengthOctets(size)
  const out = new Uint8Array(1 + len.length + size)
  out[0] = tag
  out.set(len, 1)
  let at = 1 + len.length
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export const sequence = (...parts: readonly Uint8Array[]): Uint8Array => tlv(0x30, ...parts)

/** OBJECT IDENTIFIER from dotted text (X.690 §8.19): base-128 arcs, first two combined. */
export function oid(dotted: string): Uint8Array {
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

const two = (n: number): string => String(n).padStart(2, '0')

/**
 * An X.509 Time (RFC 5280 §4.1.2.5): UTCTime YYMMDDHHMMSSZ for 1950-2049, else GeneralizedTime
 * YYYYMMDDHHMMSSZ; whole seconds (the caller has rounded).
 */
export function x509TimeDer(date: Date): Uint8Array {
  const y = date.getUTCFullYear()
  const rest =
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes()) +
    two(date.getUTCSeconds()) +
    'Z'
  if (y >= 1950 && y < 2050) return ascii(0x17, two(y % 100) + rest)
  if (y < 0 || y > 9999) throw new TypeError('year outside 0..9999')
  return ascii(0x18, String(y).padStart(4, '0') + rest)
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
