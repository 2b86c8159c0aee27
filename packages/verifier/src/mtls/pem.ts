import { X509Certificate } from 'node:crypto'

const PEM_CERT =
  /-----BEGIN CERTIFICATE-----[\r\n]+([A-Za-z0-9+/=\r\n\t ]+?)-----END CERTIFICATE-----/g

/** A certificate as callers may hand it in: parsed, DER bytes, or PEM text (one certificate). */
export type CertificateInput = X509Certificate | Uint8Array | string

/** Splits PEM text into the DER of each `CERTIFICATE` block, in order. */
export function pemToDers(pem: string): Buffer[] {
  return [...pem.matchAll(PEM_CERT)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'))
}

/** Parses every certificate of a PEM bundle; throws `TypeError` on a block that does not parse. */
export function parsePemBundle(pem: string, what: string): X509Certificate[] {
  const ders = pemToDers(pem)
  try {
    return ders.map((der) => new X509Certificate(der))
  } catch (cause) {
    throw new TypeError(`${what} holds a certificate that does not parse`, { cause })
  }
}

/**
 * Parses one certificate. PEM text must hold exactly one `CERTIFICATE` block, so that a bundle
 * can never be mistaken for its first member. Returns `undefined` if it does not parse.
 */
export function toCertificate(input: CertificateInput): X509Certificate | undefined {
  if (input instanceof X509Certificate) return input
  try {
    if (typeof input === 'string') {
      const ders = pemToDers(input)
      return ders.length === 1 ? new X509Certificate(ders[0]!) : undefined
    }
    return new X509Certificate(input)
  } catch {
    return undefined
  }
}
