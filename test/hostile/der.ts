import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'

/*
 * A small DER writer of the test's own (X.690), independent of src/x509, for building hostile
 * certificate requests byte by byte: wrong OIDs, duplicate or garbage extensions, a thousand
 * SANs — each still correctly signed, so that the CA's checks after the signature are reached.
 */

export function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

export const tlv = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), length(body.length), body])
}

export const seq = (...c: Buffer[]) => tlv(0x30, ...c)
export const set = (...c: Buffer[]) => tlv(0x31, ...c)
export const int = (n: number) => tlv(0x02, Buffer.from([n]))
export const octets = (b: Buffer) => tlv(0x04, b)
export const bitString = (b: Buffer) => tlv(0x03, Buffer.from([0]), b)
export const ia5 = (s: string) => tlv(0x16, Buffer.from(s, 'latin1'))

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const out = [parts[0]! * 40 + parts[1]!]
  for (const p of parts.slice(2)) {
    const b: number[] = [p & 0x7f]
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 | (v & 0x7f))
    out.push(...b)
  }
  return tlv(0x06, Buffer.from(out))
}

export const OID = {
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha1: '1.2.840.10045.4.1',
  ecPublicKey: '1.2.840.10045.2.1',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  unknown: '1.3.6.1.4.1.99999.1',
} as const

export const extension = (id: string, value: Buffer, critical = false) =>
  seq(oid(id), ...(critical ? [tlv(0x01, Buffer.from([0xff]))] : []), octets(value))

/** subjectAltName value: URIs as [6] IA5String, DNS names as [2]. */
export const sanValue = (uris: string[], dns: string[] = []) =>
  seq(
    ...uris.map((u) => tlv(0x86, Buffer.from(u, 'latin1'))),
    ...dns.map((d) => tlv(0x82, Buffer.from(d, 'latin1'))),
  )

export interface CsrParts {
  version?: Buffer
  subject?: Buffer
  spki?: Buffer
  /** The extensions of the one extensionRequest attribute (none: no attributes at all). */
  extensions?: Buffer[]
  /** Raw attributes, instead of the extensionRequest built from `extensions`. */
  attributes?: Buffer
  sigAlg?: string
  /** Sign with this key instead of the CSR's own (a failed proof of possession). */
  signer?: KeyObject
}

export interface CsrKey {
  privateKey: KeyObject
  publicKey: KeyObject
  keyPem: string
}

export function newKey(): CsrKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  return {
    privateKey,
    publicKey,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  }
}

/** A PKCS#10 request (RFC 2986) from parts, signed with ECDSA-SHA256 over the info as encoded. */
export function csrDer(key: CsrKey, parts: CsrParts = {}): Buffer {
  const spki = parts.spki ?? key.publicKey.export({ type: 'spki', format: 'der' })
  const attributes =
    parts.attributes ??
    (parts.extensions
      ? tlv(0xa0, seq(oid(OID.extensionRequest), set(seq(...parts.extensions))))
      : tlv(0xa0))
  const info = seq(parts.version ?? int(0), parts.subject ?? seq(), spki, attributes)
  const signature = sign('sha256', info, parts.signer ?? key.privateKey)
  return seq(info, seq(oid(parts.sigAlg ?? OID.ecdsaSha256)), bitString(signature))
}

export function pem(der: Buffer, label = 'CERTIFICATE REQUEST'): string {
  const b64 =
    der
      .toString('base64')
      .match(/.{1,64}/g)
      ?.join('\n') ?? ''
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`
}

/** A CSR for `spiffeId` that the CA accepts as it is (the baseline every mutation starts from). */
export function validCsr(spiffeId: string, key: CsrKey = newKey()): Buffer {
  return csrDer(key, { extensions: [extension(OID.subjectAltName, sanValue([spiffeId]), true)] })
}

/** The TLVs inside a constructed DER TLV (definite lengths only: for reading openssl's output). */
export function children(der: Buffer): Buffer[] {
  const out: Buffer[] = []
  const body = der.subarray(headerLength(der), der.length)
  for (let at = 0; at < body.length;) {
    const rest = body.subarray(at)
    const size = headerLength(rest) + contentLength(rest)
    out.push(rest.subarray(0, size))
    at += size
  }
  return out
}

function headerLength(tlv: Buffer): number {
  return tlv[1]! < 0x80 ? 2 : 2 + (tlv[1]! & 0x7f)
}

function contentLength(tlv: Buffer): number {
  if (tlv[1]! < 0x80) return tlv[1]!
  let n = 0
  for (let i = 0; i < (tlv[1]! & 0x7f); i++) n = n * 256 + tlv[2 + i]!
  return n
}
