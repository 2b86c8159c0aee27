import { randomBytes } from 'node:crypto'

/**
 * A fresh certificate serial: 16 CSPRNG bytes (≥ 64 bits of entropy, CA/B BR §7.1) encoded as
 * a positive, minimal DER INTEGER (RFC 5280 §4.1.2.2: positive, at most 20 octets). Clearing
 * the top bit keeps it positive; setting the next one means no leading 0x00 is ever needed
 * and the length is always 16, so the serial round-trips byte-for-byte. 126 random bits remain.
 */
export function newSerial(): Uint8Array {
  const bytes = new Uint8Array(randomBytes(16))
  bytes[0] = (bytes[0]! & 0x7f) | 0x40
  return bytes
}

/** Lowercase hex, two digits per byte, as `openssl x509 -serial` prints it (case aside). */
export function serialToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/**
 * Hex serial (either case) → INTEGER content bytes. Refuses anything that is not a positive,
 * minimal DER INTEGER of 1..20 octets, so a lookup key always names one certificate.
 */
export function serialFromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2}){1,20}$/.test(hex)) {
    throw new TypeError(`serial must be 1-20 bytes of hex, got ${JSON.stringify(hex)}`)
  }
  const bytes = new Uint8Array(Buffer.from(hex, 'hex'))
  assertSerial(bytes)
  return bytes
}

/** Throws TypeError unless `bytes` is a positive, minimally encoded INTEGER of 1..20 octets. */
export function assertSerial(bytes: Uint8Array): void {
  if (bytes.length < 1 || bytes.length > 20) throw new TypeError('serial must be 1-20 octets')
  if (bytes[0]! & 0x80) throw new TypeError('serial must be positive')
  if (bytes.length > 1 && bytes[0] === 0 && !(bytes[1]! & 0x80)) {
    throw new TypeError('serial is not minimally encoded')
  }
  if (bytes.every((b) => b === 0)) throw new TypeError('serial must not be zero')
}
