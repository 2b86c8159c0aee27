import {
  csrDer,
  extension,
  int,
  newKey,
  OID,
  oid,
  pem,
  sanValue,
  seq,
  tlv,
  bitString,
} from './der.js'
import type { CaseContext, HostileCase, HostileRequest } from './harness.js'

/*
 * Case generators shared by the corpus rows: hostile CSRs (as DER inside a PEM inside JSON),
 * hostile JSON bodies, hostile forms and hostile bytes on the wire.
 */

export const q = (path: string): HostileRequest => ({ method: 'GET', path })
export const nothing: HostileCase = {
  name: 'a plain request',
  request: () => ({}),
  mayAccept: true,
}
/** The Authorization line of a raw request on a join-token route; on others, none. */
export const bearer = (c: CaseContext) => `authorization: Bearer ${c.joinToken}\r\n`
export const noAuth = () => ''
export const binary = (body: Buffer | string, type: string): HostileRequest => ({
  headers: { 'content-type': type },
  body,
})

/** A JSON route's body cases and its wire cases. */
export const jsonAndWire = (
  method: string,
  path: (c: CaseContext) => string,
  auth: (c: CaseContext) => string,
  valid: (c: CaseContext) => Record<string, unknown>,
  rules: JsonRules,
) => [...jsonCases(valid, rules), ...wireCases(method, path, auth)]

const MB = 1024 * 1024
const json = (value: unknown): HostileRequest => ({
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(value),
})
const jsonText = (text: string | Buffer, type = 'application/json'): HostileRequest => ({
  headers: { 'content-type': type },
  body: text,
})

/** Nested SEQUENCEs `depth` deep around `inner`. */
function nested(depth: number, inner: Buffer = Buffer.alloc(0)): Buffer {
  let out: Buffer = inner
  for (let i = 0; i < depth; i++) out = seq(out)
  return out
}

/** A P-256 SubjectPublicKeyInfo whose point is not on the curve. */
function offCurveSpki(): Buffer {
  const real = newKey().publicKey.export({ type: 'spki', format: 'der' })
  const bad = Buffer.from(real)
  bad[bad.length - 1]! ^= 0xff
  return bad
}

const spkiWithAlg = (alg: string) => {
  const real = newKey().publicKey.export({ type: 'spki', format: 'der' })
  const point = real.subarray(real.length - 65)
  return seq(seq(oid(alg), oid('1.2.840.10045.3.1.7')), bitString(point))
}

/** DER CSRs the CA must refuse, built for `spiffeId`. */
export function hostileCsrs(spiffeId: string): [string, () => Buffer][] {
  const san = (uris: string[], dns: string[] = []) =>
    extension(OID.subjectAltName, sanValue(uris, dns), true)
  const valid = () => csrDer(newKey(), { extensions: [san([spiffeId])] })
  const thousand = (f: (i: number) => string) => Array.from({ length: 1000 }, (_, i) => f(i))
  return [
    ['truncated to 1 byte', () => valid().subarray(0, 1)],
    ['truncated to 10 bytes', () => valid().subarray(0, 10)],
    ['truncated in half', () => ((d) => d.subarray(0, d.length >> 1))(valid())],
    ['missing its last byte', () => ((d) => d.subarray(0, d.length - 1))(valid())],
    ['with trailing bytes', () => Buffer.concat([valid(), Buffer.from([0, 0, 0])])],
    [
      'an outer length of 2^31-1',
      () => Buffer.concat([Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]), valid().subarray(2)]),
    ],
    [
      'an 8-byte length field',
      () => Buffer.concat([Buffer.from([0x30, 0x88, 0, 0, 0, 0, 0, 0, 1, 0]), valid()]),
    ],
    [
      'an indefinite length (BER)',
      () => Buffer.concat([Buffer.from([0x30, 0x80]), valid().subarray(2), Buffer.from([0, 0])]),
    ],
    ['5,000 nested SEQUENCEs', () => nested(5000)],
    [
      'a SEQUENCE of 10,000 empty SEQUENCEs',
      () => seq(...Array.from({ length: 10_000 }, () => seq())),
    ],
    [
      'signature algorithm ecdsa-with-SHA1',
      () => csrDer(newKey(), { extensions: [san([spiffeId])], sigAlg: OID.ecdsaSha1 }),
    ],
    [
      'an unknown signature algorithm',
      () => csrDer(newKey(), { extensions: [san([spiffeId])], sigAlg: OID.unknown }),
    ],
    ['an unknown public key algorithm', () => csrDer(newKey(), { spki: spkiWithAlg(OID.unknown) })],
    ['an EC point off the curve', () => csrDer(newKey(), { spki: offCurveSpki() })],
    [
      'signed by another key',
      () => csrDer(newKey(), { extensions: [san([spiffeId])], signer: newKey().privateKey }),
    ],
    ['version 1', () => csrDer(newKey(), { version: int(1), extensions: [san([spiffeId])] })],
    ['version 255', () => csrDer(newKey(), { version: int(255) })],
    [
      'two subjectAltName extensions',
      () => csrDer(newKey(), { extensions: [san([spiffeId]), san([spiffeId])] }),
    ],
    [
      'two basicConstraints extensions',
      () =>
        csrDer(newKey(), {
          extensions: [
            extension(OID.basicConstraints, seq()),
            extension(OID.basicConstraints, seq()),
          ],
        }),
    ],
    [
      'basicConstraints CA:true',
      () =>
        csrDer(newKey(), {
          extensions: [
            san([spiffeId]),
            extension(OID.basicConstraints, seq(tlv(0x01, Buffer.from([0xff]))), true),
          ],
        }),
    ],
    [
      'a subjectAltName that is not DER',
      () =>
        csrDer(newKey(), {
          extensions: [extension(OID.subjectAltName, Buffer.from([0x30, 0x85, 1]))],
        }),
    ],
    [
      '1,000 DNS SANs',
      () =>
        csrDer(newKey(), {
          extensions: [
            san(
              [spiffeId],
              thousand((i) => `h${i}.example.org`),
            ),
          ],
        }),
    ],
    [
      '1,000 URI SANs',
      () => csrDer(newKey(), { extensions: [san(thousand((i) => `${spiffeId}/${i}`))] }),
    ],
    [
      '1,000 copies of its own URI SAN',
      () => csrDer(newKey(), { extensions: [san(thousand(() => spiffeId))] }),
    ],
    [
      'a URI SAN with a NUL byte',
      () => csrDer(newKey(), { extensions: [san([`${spiffeId}\0.evil.example`])] }),
    ],
    [
      'a URI SAN of another trust domain',
      () => csrDer(newKey(), { extensions: [san(['spiffe://evil.example/x'])] }),
    ],
    [
      'two extensionRequest attributes',
      () => {
        const ext = seq(oid(OID.extensionRequest), tlv(0x31, seq(san([spiffeId]))))
        return csrDer(newKey(), { attributes: tlv(0xa0, ext, ext) })
      },
    ],
  ]
}

/** Hostile `csr` values inside an otherwise well-formed JSON body. */
export function csrCases(body: (csr: unknown) => unknown, spiffeId: () => string): HostileCase[] {
  const der = (name: string, make: () => Buffer): HostileCase => ({
    name: `CSR: ${name}`,
    request: () => json(body(pem(make()))),
  })
  return [
    ...hostileCsrs(spiffeId()).map(([name, make]) => der(name, make)),
    {
      name: 'CSR: a PEM of another label',
      request: () => json(body(pem(Buffer.from([0x30, 0]), 'CERTIFICATE'))),
    },
    { name: 'CSR: two PEM blocks', request: (c) => json(body(c.csrPem + c.csrPem)) },
    {
      name: 'CSR: base64 that is not',
      request: () =>
        json(
          body('-----BEGIN CERTIFICATE REQUEST-----\n%%%%\n-----END CERTIFICATE REQUEST-----\n'),
        ),
    },
    {
      name: 'CSR: 10,000 BEGIN lines',
      request: () => json(body('-----BEGIN CERTIFICATE REQUEST-----\n'.repeat(1500))),
    },
    ...[1, [], {}, null, true].map((v): HostileCase => ({
      name: `CSR: ${JSON.stringify(v)}`,
      request: () => json(body(v)),
    })),
  ]
}

/** What a route takes besides a whole valid body. */
export interface JsonRules {
  /** Unknown members are refused (else ignored: /v1/enroll and /v1/renew). */
  readonly strict: boolean
  /** `{}` is a valid body (every member optional). */
  readonly emptyObject?: boolean
  /** No body at all is a valid request. */
  readonly emptyBody?: boolean
}

/**
 * Hostile JSON bodies for a route that takes a JSON object; `valid` makes a body the route would
 * accept, so that each case differs from an accepted request only in what it breaks. On a route
 * that ignores unknown members (`strict: false`, /v1/enroll and /v1/renew), extra members are fine.
 */
export function jsonCases(
  valid: (c: CaseContext) => Record<string, unknown>,
  opts: JsonRules,
): HostileCase[] {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n)
  const extra = (c: CaseContext, member: string) =>
    JSON.stringify(valid(c)).replace(/}$/, `,${member}}`)
  const lenient = !opts.strict
  return [
    { name: 'JSON: truncated', request: (c) => jsonText(JSON.stringify(valid(c)).slice(0, -3)) },
    { name: 'JSON: an array', request: (c) => json([valid(c)]) },
    ...['null', '"x"', '42'].map((t): HostileCase => ({
      name: `JSON: ${t}`,
      request: () => jsonText(t),
    })),
    {
      name: 'JSON: an empty body',
      request: () => jsonText(''),
      mayAccept: opts.emptyBody === true,
    },
    { name: 'JSON: nested 30,000 deep', request: () => jsonText(deep(30_000)) },
    {
      name: 'JSON: a member nested 20,000 deep',
      request: (c) => jsonText(extra(c, `"x":${deep(20_000)}`)),
      mayAccept: lenient,
    },
    {
      name: 'JSON: missing every field',
      request: () => json({}),
      mayAccept: opts.emptyObject === true,
    },
    {
      name: 'JSON: an extra field',
      request: (c) => jsonText(extra(c, '"extra":1')),
      mayAccept: lenient,
    },
    {
      name: 'JSON: __proto__ and constructor members',
      request: (c) =>
        jsonText(extra(c, '"__proto__":{"admin":true},"constructor":{"prototype":{}}')),
      mayAccept: lenient,
    },
    {
      name: 'JSON: invalid UTF-8 in a member',
      request: (c) =>
        jsonText(
          Buffer.concat([
            Buffer.from(extra(c, '"x":"').slice(0, -1)),
            Buffer.from([0xff, 0xfe, 0xc3]),
            Buffer.from('"}'),
          ]),
        ),
      mayAccept: lenient,
    },
    {
      name: 'JSON: UTF-16 with a byte-order mark',
      request: (c) => jsonText(Buffer.from(`\ufeff${JSON.stringify(valid(c))}`, 'utf16le')),
    },
    {
      name: 'JSON: a NUL byte after the object',
      request: (c) => jsonText(Buffer.from(`${JSON.stringify(valid(c))}\0`)),
    },
    {
      name: 'content type: text/plain',
      request: (c) => jsonText(JSON.stringify(valid(c)), 'text/plain'),
    },
    {
      name: 'content type: a form',
      request: (c) => jsonText(JSON.stringify(valid(c)), 'application/x-www-form-urlencoded'),
    },
    {
      name: 'content type: multipart',
      request: (c) => jsonText(JSON.stringify(valid(c)), 'multipart/form-data; boundary=x'),
    },
    { name: 'content type: none', request: (c) => ({ body: JSON.stringify(valid(c)) }) },
    {
      name: 'body: 10 MB with a content-length',
      request: () => jsonText(Buffer.alloc(10 * MB, 0x20)),
    },
  ]
}

/** Bytes on the wire that no well-behaved client sends (node's parser or the route must refuse). */
export function wireCases(
  method: string,
  path: (c: CaseContext) => string,
  auth: (c: CaseContext) => string,
): HostileCase[] {
  // A body no route takes (a JSON array, no content type): only the framing is in question.
  const req = (c: CaseContext, headerLines: string[], body = '[]') =>
    Buffer.from(
      `${method} ${path(c)} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n${auth(c)}${headerLines.join('')}` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      'latin1',
    )
  return [
    {
      name: 'wire: a bare CR inside a header',
      request: (c) => ({ raw: req(c, ['x-a: 1\rx-b: 2\r\n']) }),
    },
    {
      name: 'wire: a bare LF inside a header',
      request: (c) => ({ raw: req(c, ['x-a: 1\nx-b: 2\r\n']) }),
    },
    { name: 'wire: a NUL inside a header', request: (c) => ({ raw: req(c, ['x-a: 1\0\r\n']) }) },
    {
      name: 'wire: a folded header line',
      request: (c) => ({ raw: req(c, ['x-a: 1\r\n  folded\r\n']) }),
    },
    { name: 'wire: a space in a header name', request: (c) => ({ raw: req(c, ['x a: 1\r\n']) }) },
    {
      name: 'wire: Transfer-Encoding and Content-Length',
      request: (c) => ({ raw: req(c, ['transfer-encoding: chunked\r\n']) }),
    },
    {
      name: 'wire: two different Content-Lengths',
      request: (c) => ({ raw: req(c, ['content-length: 7\r\n']) }),
    },
    {
      name: 'wire: 8-bit bytes in Authorization',
      request: (c) => ({ raw: req(c, ['authorization: Bearer \xff\xfe\x80\r\n']) }),
    },
    {
      name: 'wire: headers over 16 KB',
      request: (c) => ({ raw: req(c, [`x-big: ${'a'.repeat(20_000)}\r\n`]) }),
    },
    {
      name: 'wire: a chunked body of 10 MB',
      request: (c) => ({ raw: chunked(method, path(c), auth(c), 10 * MB) }),
    },
  ]
}

function chunked(method: string, path: string, auth: string, size: number): Buffer {
  const head = `${method} ${path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n${auth}content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`
  const piece = Buffer.alloc(64 * 1024, 0x20)
  const chunk = Buffer.concat([
    Buffer.from(`${piece.length.toString(16)}\r\n`),
    piece,
    Buffer.from('\r\n'),
  ])
  return Buffer.concat([
    Buffer.from(head),
    ...Array.from({ length: size / piece.length }, () => chunk),
    Buffer.from('0\r\n\r\n'),
  ])
}
