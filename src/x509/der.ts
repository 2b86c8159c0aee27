import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'

/**
 * Decodes exactly one DER/BER value spanning all of `bytes`. asn1js reports errors through
 * `offset === -1` rather than throwing, and silently ignores trailing bytes; both are errors
 * here (a certificate with junk after it is not the certificate that was signed).
 */
export function decodeDer(bytes: Uint8Array, what: string): asn1js.AsnType {
  const { offset, result } = asn1js.fromBER(bytes)
  if (offset === -1) throw new Error(`${what}: ${result.error || 'malformed DER'}`)
  if (offset !== bytes.byteLength) throw new Error(`${what}: trailing bytes after the DER value`)
  return result
}

/** An asn1js/pkijs ArrayBuffer or view as a fresh Uint8Array that we own. */
export function toBytes(data: ArrayBuffer | Uint8Array): Uint8Array {
  return data instanceof Uint8Array ? data.slice() : new Uint8Array(data.slice(0))
}

/** DER encoding of an asn1js block. */
export function encode(block: { toBER(sizeOnly?: boolean): ArrayBuffer }): Uint8Array {
  return new Uint8Array(block.toBER())
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0
}

/**
 * An X.509 Time (RFC 5280 §4.1.2.5, §5.1.2.4): UTCTime for 1950-2049, GeneralizedTime otherwise.
 * pkijs defaults to UTCTime whatever the year (asn1js then throws) and would write fractional
 * seconds into a GeneralizedTime, so we pick the type and drop milliseconds ourselves.
 */
export function x509Time(date: Date): pkijs.Time {
  const value = wholeSeconds(date)
  const year = value.getUTCFullYear()
  const utc = year >= 1950 && year < 2050
  return new pkijs.Time({
    type: utc ? pkijs.TimeType.UTCTime : pkijs.TimeType.GeneralizedTime,
    value,
  })
}

/** Rounds down to whole seconds: X.509 times carry no fractions (RFC 5280 §4.1.2.5.2). */
export function wholeSeconds(date: Date): Date {
  const ms = date.getTime()
  if (!Number.isFinite(ms)) throw new TypeError('invalid date')
  return new Date(ms - (((ms % 1000) + 1000) % 1000))
}
