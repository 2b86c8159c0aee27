import { verify, type X509Certificate } from 'node:crypto'

/*
 * Just enough DER to check a CRL (RFC 5280 §5) with node:crypto — the verifier package takes
 * no ASN.1 library. Only the issuing CA's own CRL is read, and every field used is checked.
 *
 *   CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
 *   TBSCertList ::= SEQUENCE { version INTEGER OPTIONAL, signature AlgorithmIdentifier,
 *     issuer Name, thisUpdate Time, nextUpdate Time OPTIONAL,
 *     revokedCertificates SEQUENCE OF SEQUENCE { userCertificate INTEGER, revocationDate Time,
 *       crlEntryExtensions Extensions OPTIONAL } OPTIONAL,
 *     crlExtensions [0] EXPLICIT Extensions OPTIONAL }
 */

interface Tlv {
  readonly tag: number
  /** The whole encoding (tag, length, contents). */
  readonly der: Buffer
  readonly body: Buffer
}

function readTlv(buf: Buffer, offset: number): Tlv {
  const tag = buf[offset]
  let len = buf[offset + 1]
  if (tag === undefined || len === undefined) throw new Error('truncated DER')
  let head = 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0 || n > 4) throw new Error('unsupported DER length')
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + (buf[offset + 2 + i] ?? NaN)
    head += n
  }
  const end = offset + head + len
  if (!Number.isFinite(len) || end > buf.length) throw new Error('truncated DER')
  return { tag, der: buf.subarray(offset, end), body: buf.subarray(offset + head, end) }
}

function children(parent: Tlv): Tlv[] {
  const out: Tlv[] = []
  for (let offset = 0; offset < parent.body.length;) {
    const t = readTlv(parent.body, offset)
    out.push(t)
    offset += t.der.length
  }
  return out
}

function oid(t: Tlv): string {
  if (t.tag !== 0x06 || t.body.length === 0) throw new Error('expected an OID')
  const parts: number[] = [Math.floor(t.body[0]! / 40), t.body[0]! % 40]
  let v = 0
  for (const b of t.body.subarray(1)) {
    v = v * 128 + (b & 0x7f)
    if (!(b & 0x80)) (parts.push(v), (v = 0))
  }
  return parts.join('.')
}

function time(t: Tlv): Date {
  const s = t.body.toString('latin1')
  const m =
    t.tag === 0x17
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
      : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
  if (!m || (t.tag !== 0x17 && t.tag !== 0x18))
    throw new Error('expected a UTC or generalized time')
  let year = Number(m[1])
  if (t.tag === 0x17) year += year < 50 ? 2000 : 1900 // RFC 5280 §4.1.2.5.1
  return new Date(
    Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])),
  )
}

function integer(t: Tlv): bigint {
  if (t.tag !== 0x02 || t.body.length === 0) throw new Error('expected an INTEGER')
  return BigInt(`0x${t.body.toString('hex')}`)
}

// Signature algorithms of CRLs this CA signs: RFC 5758 §3.2, RFC 4055 §5, RFC 8410 §3.
const DIGEST: Record<string, string | null> = {
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.3.101.112': null,
}
const CRL_NUMBER = '2.5.29.20'

/** A CRL whose signature, issuer and shape were checked. */
export interface CheckedCrl {
  readonly number: bigint
  readonly thisUpdate: Date
  readonly nextUpdate: Date
  /** Serial numbers listed as revoked. */
  readonly revoked: ReadonlySet<bigint>
}

/** The subject Name (DER) of a certificate: the sixth field of its tbsCertificate. */
function subjectDer(cert: X509Certificate): Buffer {
  const tbs = children(children(readTlv(cert.raw, 0))[0]!)
  return tbs[tbs[0]!.tag === 0xa0 ? 5 : 4]!.der
}

/**
 * The subjectKeyIdentifier (RFC 5280 §4.2.1.2) of a certificate as lowercase hex, or undefined:
 * how certbound names a CA in its URLs (`/v1/ca/{key id}/crl`).
 */
export function subjectKeyIdHex(cert: X509Certificate): string | undefined {
  const tbs = children(children(readTlv(cert.raw, 0))[0]!)
  const exts = tbs.find((t) => t.tag === 0xa3)
  if (!exts) return undefined
  for (const ext of children(children(exts)[0]!)) {
    const [id, ...rest] = children(ext)
    if (oid(id!) !== '2.5.29.14') continue
    const value = readTlv(rest.at(-1)!.body, 0)
    return value.tag === 0x04 ? value.body.toString('hex') : undefined
  }
  return undefined
}

/**
 * Parses a DER CRL and checks that `issuer` signed it and is the issuer it names, and that it
 * carries a CRL number and a nextUpdate (RFC 5280 §5.1.2.5, §5.2.3). Its window and number are
 * for the caller to judge.
 *
 * @throws {Error} naming what is wrong.
 */
export function checkCrl(der: Uint8Array, issuer: X509Certificate): CheckedCrl {
  const outer = readTlv(Buffer.from(der), 0)
  if (outer.tag !== 0x30 || outer.der.length !== der.length) throw new Error('not a DER CRL')
  const [tbs, sigAlg, sigValue] = children(outer)
  if (!tbs || !sigAlg || !sigValue || sigValue.tag !== 0x03) throw new Error('not a CRL')
  const fields = children(tbs)
  let i = fields[0]?.tag === 0x02 ? 1 : 0 // version
  const innerAlg = fields[i++]!
  if (!innerAlg.der.equals(sigAlg.der)) throw new Error('the CRL names two signature algorithms')
  const algorithm = oid(children(sigAlg)[0]!)
  const digest = DIGEST[algorithm]
  if (digest === undefined) throw new Error(`unsupported CRL signature algorithm ${algorithm}`)
  const signature = sigValue.body.subarray(1) // no unused bits in a signature
  if (!verify(digest, tbs.der, issuer.publicKey, signature)) {
    throw new Error('the CRL signature does not verify with the issuing CA key')
  }
  if (!fields[i++]!.der.equals(subjectDer(issuer))) throw new Error('the CRL names another issuer')
  const thisUpdate = time(fields[i++]!)
  const next = fields[i]
  if (next?.tag !== 0x17 && next?.tag !== 0x18) throw new Error('the CRL has no nextUpdate')
  const nextUpdate = time(next)
  i++
  const revoked = new Set<bigint>()
  if (fields[i]?.tag === 0x30) {
    for (const entry of children(fields[i++]!)) revoked.add(integer(children(entry)[0]!))
  }
  let number: bigint | undefined
  if (fields[i]?.tag === 0xa0) {
    for (const ext of children(children(fields[i]!)[0]!)) {
      const [id, ...rest] = children(ext)
      if (oid(id!) === CRL_NUMBER) number = integer(readTlv(rest.at(-1)!.body, 0))
    }
  }
  if (number === undefined) throw new Error('the CRL has no CRL number')
  return { number, thisUpdate, nextUpdate, revoked }
}
