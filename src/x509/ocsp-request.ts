import { childrenOf, contentOf, oidText, readDer, type Tlv } from './der-reader.js'

// OCSP requests (RFC 6960 §4.1.1), read with the strict DER reader:
//   OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
//   TBSRequest ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1,
//     requestorName [1] EXPLICIT GeneralName OPTIONAL, requestList SEQUENCE OF Request,
//     requestExtensions [2] EXPLICIT Extensions OPTIONAL }
//   Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
//   CertID ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
//     issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }

/** Hash algorithms a CertID may use (SHA-1 is openssl's default there: a name hash, no signature). */
export const CERT_ID_HASHES: Readonly<Record<string, 'sha1' | 'sha256' | 'sha384' | 'sha512'>> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
}

/** id-pkix-ocsp-nonce (RFC 8954 §2.1). */
export const OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2'
/** Requests in one OCSPRequest this responder answers at most. */
export const MAX_CERT_IDS = 8

/** A request that is not one: answered with `malformedRequest` (RFC 6960 §2.3). */
export class MalformedOcspRequest extends Error {}

export interface CertId {
  /** The whole CertID DER, echoed in the answer. */
  readonly der: Uint8Array
  readonly hash: 'sha1' | 'sha256' | 'sha384' | 'sha512'
  readonly issuerNameHash: Buffer
  readonly issuerKeyHash: Buffer
  /** Lowercase hex of the serial's INTEGER content (as the database keys certificates). */
  readonly serialHex: string
}

export interface OcspRequest {
  readonly certIds: readonly CertId[]
  /** The nonce extension as sent (extnID, extnValue), echoed in the answer; undefined: none. */
  readonly nonceExtension: Uint8Array | undefined
}

function fail(why: string): never {
  throw new MalformedOcspRequest(why)
}

function certIdOf(buf: Uint8Array, t: Tlv): CertId {
  const [alg, nameHash, keyHash, serial, ...rest] = childrenOf(buf, t)
  if (t.tag !== 0x30 || !alg || alg.tag !== 0x30 || rest.length) fail('CertID is not a CertID')
  const algId = childrenOf(buf, alg)
  const hash = CERT_ID_HASHES[oidText(buf, algId[0] ?? fail('no hash algorithm'))]
  if (!hash) fail('unsupported CertID hash algorithm')
  if (nameHash?.tag !== 0x04 || keyHash?.tag !== 0x04 || serial?.tag !== 0x02)
    fail('CertID fields are not OCTET STRING, OCTET STRING, INTEGER')
  return {
    der: buf.subarray(t.offset, t.end),
    hash,
    issuerNameHash: Buffer.from(contentOf(buf, nameHash)),
    issuerKeyHash: Buffer.from(contentOf(buf, keyHash)),
    serialHex: Buffer.from(contentOf(buf, serial)).toString('hex'),
  }
}

/** The nonce extension of `Extensions`, checked against RFC 8954 §2.1 (1..32 octets). */
function nonceOf(buf: Uint8Array, exts: Tlv): Uint8Array | undefined {
  let found: Uint8Array | undefined
  for (const ext of childrenOf(buf, exts)) {
    const [id, ...more] = childrenOf(buf, ext)
    if (ext.tag !== 0x30 || !id) fail('an extension is not an Extension')
    if (oidText(buf, id) !== OCSP_NONCE) continue
    if (found) fail('two nonce extensions')
    const value = more.at(-1)
    if (value?.tag !== 0x04) fail('the nonce extension has no value')
    const inner = childrenOf(buf, value)
    const n = inner.length === 1 && inner[0]!.tag === 0x04 ? inner[0]!.end - inner[0]!.start : -1
    // RFC 8954 §2.1: a Nonce is an OCTET STRING of 1 to 32 octets.
    if (n < 1 || n > 32) fail('the nonce must be an OCTET STRING of 1 to 32 octets (RFC 8954)')
    found = buf.subarray(ext.offset, ext.end)
  }
  return found
}

/** Parses a DER OCSPRequest; anything else throws MalformedOcspRequest naming why. */
export function parseOcspRequest(der: Uint8Array): OcspRequest {
  let top: Tlv
  try {
    top = readDer(der)
  } catch (e) {
    fail(`not DER: ${(e as Error).message}`)
  }
  try {
    return readRequest(der, top)
  } catch (e) {
    if (e instanceof MalformedOcspRequest) throw e
    fail((e as Error).message)
  }
}

function readRequest(buf: Uint8Array, top: Tlv): OcspRequest {
  const [tbs] = childrenOf(buf, top)
  if (top.tag !== 0x30 || tbs?.tag !== 0x30) fail('not an OCSPRequest')
  const fields = childrenOf(buf, tbs)
  let i = 0
  if (fields[i]?.tag === 0xa0) {
    const v = childrenOf(buf, fields[i++]!)
    if (
      v.length !== 1 ||
      v[0]!.tag !== 0x02 ||
      v[0]!.end - v[0]!.start !== 1 ||
      buf[v[0]!.start] !== 0
    )
      fail('only OCSP version 1 is known')
  }
  if (fields[i]?.tag === 0xa1) i++ // requestorName: not used
  const list = fields[i++]
  if (list?.tag !== 0x30) fail('no requestList')
  const requests = childrenOf(buf, list)
  if (requests.length === 0) fail('an empty requestList')
  if (requests.length > MAX_CERT_IDS) fail(`more than ${MAX_CERT_IDS} certificates in one request`)
  const certIds = requests.map((r) => {
    const [certId, ext, ...rest] = childrenOf(buf, r)
    if (r.tag !== 0x30 || !certId || rest.length || (ext && ext.tag !== 0xa0)) fail('bad Request')
    return certIdOf(buf, certId)
  })
  let nonceExtension: Uint8Array | undefined
  const exts = fields[i]
  if (exts) {
    if (exts.tag !== 0xa2 || fields.length !== i + 1) fail('unexpected fields in tbsRequest')
    const [inner] = childrenOf(buf, exts)
    if (inner?.tag !== 0x30) fail('requestExtensions is not Extensions')
    nonceExtension = nonceOf(buf, inner)
  }
  return { certIds, nonceExtension }
}
