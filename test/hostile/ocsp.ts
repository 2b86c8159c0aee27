import { randomBytes } from 'node:crypto'
import { expect } from 'vitest'
import { readOcspResponse } from '../helpers/ocsp.js'
import type { ApiResponse } from '../helpers/server.js'
import { children, int, octets, oid, seq, tlv } from './der.js'
import type { CaseContext, HostileCase, HostileRequest } from './harness.js'

/*
 * Hostile OCSP requests (RFC 6960 §4.1.1), built from the CertID of a request openssl made for
 * one of our certificates, and what the responder must answer. OCSP has its own refusals: an
 * unsigned OCSPResponse whose responseStatus says why (§2.3: malformedRequest, unauthorized,
 * tryLater), sent as 200 application/ocsp-response (Appendix A.1), never a 4xx or a 5xx.
 */

export type OcspOutcome = 'successful' | 'malformedRequest' | 'unauthorized'
const STATUS: Record<OcspOutcome, number> = { successful: 0, malformedRequest: 1, unauthorized: 6 }

const NONCE = '1.3.6.1.5.5.7.48.1.2'
const MD5 = '1.2.840.113549.2.5'
const NULL = Buffer.from([0x05, 0x00])

/** The parts of the first CertID of an openssl request (no version, no requestorName). */
interface CertIdParts {
  readonly alg: Buffer
  readonly nameHash: Buffer
  readonly keyHash: Buffer
  readonly serial: Buffer
}

function certIdParts(request: Buffer): CertIdParts {
  const [tbs] = children(request)
  const [list] = children(tbs!)
  const [certId] = children(children(list!)[0]!)
  const [alg, nameHash, keyHash, serial] = children(certId!)
  return { alg: alg!, nameHash: nameHash!, keyHash: keyHash!, serial: serial! }
}

/** A positive serial of `n` random bytes: none we issued (RFC 5280 §4.1.2.2 allows 20 at most). */
const newSerial = (n = 19) => tlv(0x02, Buffer.concat([Buffer.from([0x7e]), randomBytes(n - 1)]))

function certId(p: CertIdParts, change: Partial<CertIdParts> = {}): Buffer {
  const q = { ...p, ...change }
  return seq(q.alg, q.nameHash, q.keyHash, q.serial)
}

/** An OCSPRequest of `ids` (one Request each), with the optional fields it is given. */
function ocspRequest(
  ids: Buffer[],
  opts: { version?: Buffer; extensions?: Buffer[]; signature?: Buffer; trailing?: Buffer } = {},
): Buffer {
  const tbs = seq(
    ...(opts.version ? [tlv(0xa0, opts.version)] : []),
    seq(...ids.map((id) => seq(id))),
    ...(opts.extensions ? [tlv(0xa2, seq(...opts.extensions))] : []),
  )
  const signed = seq(tbs, ...(opts.signature ? [tlv(0xa0, opts.signature)] : []))
  return opts.trailing ? Buffer.concat([signed, opts.trailing]) : signed
}

/** RFC 8954 §2.1: the nonce extension, an OCTET STRING of `n` octets inside extnValue. */
const nonce = (n: number) => seq(oid(NONCE), octets(octets(Buffer.alloc(n, 0x5a))))

const otherCa = (p: CertIdParts): Partial<CertIdParts> => ({
  nameHash: octets(randomBytes(20)),
  keyHash: octets(randomBytes(20)),
  serial: p.serial,
})

type Built = (c: CaseContext) => Buffer

const parts = (c: CaseContext) => certIdParts(c.ocspRequest)
const unknown = (c: CaseContext) => certId(parts(c), { serial: newSerial() })
const one =
  (change: (p: CertIdParts) => Partial<CertIdParts>): Built =>
  (c) =>
    ocspRequest([certId(parts(c), change(parts(c)))])
const withUnknown =
  (opts: Parameters<typeof ocspRequest>[1]): Built =>
  (c) =>
    ocspRequest([unknown(c)], opts)
const deep = (n: number) => Array.from({ length: n }).reduce<Buffer>((b) => seq(b), seq())

/** Structured requests, each with the answer it must get. */
const REQUESTS: Record<string, [Built, OcspOutcome]> = {
  'an empty requestList': [() => ocspRequest([]), 'malformedRequest'],
  '9 CertIDs (8 at most)': [
    (c) => ocspRequest(Array.from({ length: 9 }, () => unknown(c))),
    'malformedRequest',
  ],
  'a CertID hashed with MD5': [
    one(() => ({ alg: seq(oid(MD5), NULL), serial: newSerial() })),
    'malformedRequest',
  ],
  'a CertID without its serial': [
    (c) => ocspRequest([seq(parts(c).alg, parts(c).nameHash, parts(c).keyHash)]),
    'malformedRequest',
  ],
  'a CertID whose hashes are INTEGERs': [
    one(() => ({ nameHash: int(1), keyHash: int(2) })),
    'malformedRequest',
  ],
  'version 2': [withUnknown({ version: int(1) }), 'malformedRequest'],
  'a nonce of 33 octets': [withUnknown({ extensions: [nonce(33)] }), 'malformedRequest'],
  'an empty nonce': [withUnknown({ extensions: [nonce(0)] }), 'malformedRequest'],
  'two nonces': [withUnknown({ extensions: [nonce(8), nonce(8)] }), 'malformedRequest'],
  'an indefinite length (BER)': [
    (c) => {
      const der = ocspRequest([unknown(c)])
      return Buffer.concat([Buffer.from([0x30, 0x80]), der.subarray(2), Buffer.from([0, 0])])
    },
    'malformedRequest',
  ],
  'trailing bytes after the request': [
    withUnknown({ trailing: Buffer.from([0, 0]) }),
    'malformedRequest',
  ],
  '5,000 nested SEQUENCEs': [() => deep(5000), 'malformedRequest'],
  'a CertID of another CA': [one(otherCa), 'unauthorized'],
  'CertIDs of two CAs': [
    (c) => ocspRequest([unknown(c), certId(parts(c), otherCa(parts(c)))]),
    'unauthorized',
  ],
  // Odd but valid: answered "unknown", signed on demand, never stored (any serial may be asked).
  'a serial never issued': [withUnknown({}), 'successful'],
  'a serial of 1,000 bytes': [one(() => ({ serial: newSerial(1000) })), 'successful'],
  'a nonce, for a serial never issued': [withUnknown({ extensions: [nonce(16)] }), 'successful'],
  // RFC 6960 §4.1.2: the signature is optional; this responder requires none.
  'a garbage signature, for a serial never issued': [
    withUnknown({ signature: seq(seq(oid(MD5)), tlv(0x03, Buffer.from([0, 1]))) }),
    'successful',
  ],
}

const ocspBody = (der: Buffer): HostileRequest => ({
  headers: { 'content-type': 'application/ocsp-request' },
  body: der,
})

/** POST /v1/ocsp: DER garbage, as bytes and as structured requests. */
export function ocspPostCases(): HostileCase[] {
  const garbage = [
    Buffer.alloc(0),
    Buffer.from([0x30]),
    Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]),
    Buffer.from([0x30, 0x03, 0x30, 0x01, 0x00]),
    Buffer.alloc(60_000, 0x30),
  ]
  return [
    ...garbage.map((b, i): HostileCase => ({
      name: `OCSP request DER garbage ${i}`,
      request: () => ocspBody(b),
      ocsp: 'malformedRequest',
    })),
    {
      // The responder reads DER whatever the label: '{}' is none.
      name: 'OCSP: wrong content type',
      request: () => ({ headers: { 'content-type': 'application/json' }, body: '{}' }),
      ocsp: 'malformedRequest',
    },
    {
      name: 'OCSP: 10 MB',
      request: () => ocspBody(Buffer.alloc(10 * 1024 * 1024, 0x30)),
    },
    ...Object.entries(REQUESTS).map(([name, [build, outcome]]): HostileCase => ({
      name: `OCSP request: ${name}`,
      request: (c) => ocspBody(build(c)),
      ocsp: outcome,
    })),
  ]
}

/** GET /v1/ocsp/{request}: paths that are not base64, and base64 of hostile requests. */
export function ocspGetCases(): HostileCase[] {
  // RFC 6960 A.1: the URL-encoded base64 of the DER request, after /v1/ocsp/.
  const b64 = (name: string) => (c: CaseContext) =>
    encodeURIComponent(REQUESTS[name]![0](c).toString('base64'))
  const paths: [string, (c: CaseContext) => string, OcspOutcome][] = [
    ['%%%', () => '%%%', 'malformedRequest'],
    ['MAA', () => 'MAA', 'malformedRequest'],
    ['MIQ_____', () => 'MIQ_____', 'malformedRequest'],
    ['8,000 As', () => 'A'.repeat(8000), 'malformedRequest'],
    ['../../healthz', () => '%2e%2e%2f%2e%2e%2fhealthz', 'malformedRequest'],
    ['a NUL', () => 'MAA%00', 'malformedRequest'],
    ['padding in the middle', () => 'MA==MA==', 'malformedRequest'],
    ['9 CertIDs', b64('9 CertIDs (8 at most)'), 'malformedRequest'],
    ['a CertID of another CA', b64('a CertID of another CA'), 'unauthorized'],
    ['a serial never issued', b64('a serial never issued'), 'successful'],
    [
      'a serial never issued, base64url',
      (c) => REQUESTS['a serial never issued']![0](c).toString('base64url'),
      'successful',
    ],
  ]
  return paths.map(([name, path, outcome]): HostileCase => ({
    name: `OCSP GET ${name}`,
    request: (c) => ({ method: 'GET', path: `/v1/ocsp/${path(c)}` }),
    ocsp: outcome,
  }))
}

/**
 * The responder's own answer: 200, application/ocsp-response. A refusal is the unsigned
 * OCSPResponse of its status alone (DER is unique: `30 03 0a 01 <status>`), never cached; a
 * successful answer is one openssl verifies against the CA, "unknown" for a serial never issued.
 */
export function expectOcspAnswer(
  r: ApiResponse & { bytes?: Buffer },
  outcome: OcspOutcome,
  trust: { bundlePem: string; issuerPem: string },
  what: string,
): void {
  const bytes = r.bytes ?? Buffer.from(r.text, 'latin1')
  expect(r.status, `${what}: ${r.status} ${r.text.slice(0, 200)}`).toBe(200)
  expect(r.headers['content-type'], what).toBe('application/ocsp-response')
  if (outcome !== 'successful') {
    expect(bytes.toString('hex'), what).toBe(`3003 0a01 0${STATUS[outcome]}`.replace(/ /g, ''))
    expect(r.headers['cache-control'], what).toBe('no-store')
    return
  }
  const read = readOcspResponse(bytes, trust)
  expect(read.code, `${what}: ${read.out}`).toBe(0)
  expect(read.out, what).toContain('Response verify OK')
  expect(read.out, what).toMatch(/Cert Status: unknown/)
}
