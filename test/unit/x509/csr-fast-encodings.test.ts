// The fast CSR reader on hand-built encodings: where it is stricter than the pkijs reader
// (not minimal DER), which shapes it leaves to pkijs, and odd contents both read alike.
import { createPublicKey, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'

import * as asn1js from 'asn1js'
import { describe, expect, it } from 'vitest'

import { hashFor, requireKeyType } from '../../../src/crypto/keys.js'
import { readCsrFast } from '../../../src/x509/csr-fast.js'
import { parseCsrDer, parseCsrDerWithPkijs } from '../../../src/x509/csr.js'
import { pemToDer } from '../../../src/x509/pem.js'
import { makeCsr } from '../../helpers/openssl.js'
import { isRefusal, STRICTER, verdict, view } from './csr-verdict.js'
import { FIXTURE_KEYS } from './fixture-keys.js'

const key = FIXTURE_KEYS['ec-p256'][0]!
const spki = key.publicKey.export({ type: 'spki', format: 'der' })
const ECDSA_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex')

function header(tag: number, len: number, longForm = false): Buffer {
  if (len < 0x80 && !longForm) return Buffer.from([tag, len])
  if (len < 0x100) return Buffer.from([tag, 0x81, len])
  return Buffer.from([tag, 0x82, len >> 8, len & 0xff])
}
const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts)
  return Buffer.concat([header(tag, body.length), body])
}
const oid = (dotted: string): Buffer =>
  Buffer.from(new asn1js.ObjectIdentifier({ value: dotted }).toBER())

/** A SAN extensionRequest attribute with `ext` as the Extension encoding. */
function extensionRequest(...exts: Buffer[]): Buffer {
  return tlv(0x30, oid('1.2.840.113549.1.9.14'), tlv(0x31, tlv(0x30, ...exts)))
}
const sanExt = (critical?: boolean): Buffer =>
  tlv(
    0x30,
    oid('2.5.29.17'),
    ...(critical === undefined ? [] : [Buffer.from([0x01, 0x01, critical ? 0xff : 0x00])]),
    tlv(0x04, tlv(0x30, tlv(0x86, Buffer.from('spiffe://example.org/w')))),
  )

function signed(cri: Buffer, signer: KeyObject = key.privateKey): Uint8Array {
  const sig = sign(hashFor(requireKeyType(signer)), cri, signer)
  return Uint8Array.from(tlv(0x30, cri, ECDSA_SHA256, tlv(0x03, Buffer.from([0]), sig)))
}
const cri = (attrs: Buffer | undefined, version = Buffer.from([0x02, 0x01, 0x00])): Buffer =>
  tlv(0x30, version, tlv(0x30), spki, ...(attrs ? [attrs] : []))

describe('fast CSR reader: hand-built encodings', () => {
  it('the baseline hand-built CSR reads the same both ways', () => {
    const der = signed(cri(tlv(0xa0, extensionRequest(sanExt()))))
    expect(view(readCsrFast(der)!)).toEqual(view(parseCsrDerWithPkijs(der)))
  })

  it('refuses what pkijs accepts but is not minimal DER (stricter)', () => {
    const good = signed(cri(tlv(0xa0, extensionRequest(sanExt()))))
    const body = good.subarray(good[1]! & 0x80 ? 2 + (good[1]! & 0x7f) : 2)
    const longOuter = Uint8Array.from([0x30, 0x82, body.length >> 8, body.length & 0xff, ...body])
    const bigOuter = Uint8Array.from([0x30, 0x83, 0, body.length >> 8, body.length & 0xff, ...body])
    const indefinite = Uint8Array.from([0x30, 0x80, ...body, 0, 0])
    // Inside the signed part: a long-form length below 128, and a version INTEGER 02 02 00 00.
    const ext = sanExt()
    const er = extensionRequest(ext)
    const longAttr = signed(
      tlv(0x30, Buffer.from([2, 1, 0]), tlv(0x30), spki, header(0xa0, er.length, true), er),
    )
    const longVersion = signed(cri(tlv(0xa0, extensionRequest(ext)), Buffer.from([2, 2, 0, 0])))
    for (const [name, der] of Object.entries({
      longOuter,
      bigOuter,
      indefinite,
      longAttr,
      longVersion,
    })) {
      const pk = verdict(() => parseCsrDerWithPkijs(der))
      const fast = verdict(() => parseCsrDer(der))
      expect(fast, name).toMatchObject({
        code: 'ERR_CSR_INVALID',
        message: expect.stringMatching(STRICTER),
      })
      // pkijs reads BER: these it accepts (the record of exactly where the fast reader is stricter).
      expect(pk, name).toHaveProperty('ok')
    }
  })

  it('hands valid DER of shapes it does not model to pkijs', () => {
    const cases = {
      // DER never encodes a DEFAULT value: an explicit critical FALSE.
      explicitFalse: signed(cri(tlv(0xa0, extensionRequest(sanExt(false))))),
      // RFC 2986 requires [0] attributes; pkijs does not.
      noAttributes: signed(cri(undefined)),
      otherNameSan: pemToDer(
        makeCsr({ san: 'URI:spiffe://e.org/w,otherName:1.2.3.4;UTF8:hi' }).csrPem,
        'CERTIFICATE REQUEST',
      ),
    }
    for (const [name, der] of Object.entries(cases)) {
      expect(readCsrFast(der), name).toBeUndefined()
      expect(
        verdict(() => parseCsrDer(der)),
        name,
      ).toEqual(verdict(() => parseCsrDerWithPkijs(der)))
      expect(
        verdict(() => parseCsrDer(der)),
        name,
      ).toHaveProperty('ok')
    }
    expect(parseCsrDer(cases.otherNameSan).uris).toEqual(['spiffe://e.org/w'])
  })

  it('ignored extensions, odd SAN contents and bad extension values: as pkijs reads them', () => {
    const ext = (id: string, value: Buffer): Buffer => tlv(0x30, oid(id), tlv(0x04, value))
    const san = (...names: Buffer[]): Buffer => ext('2.5.29.17', tlv(0x30, ...names))
    const uri = san(tlv(0x86, Buffer.from('spiffe://example.org/w')))
    const cases: Record<string, Buffer[]> = {
      keyUsageGarbage: [ext('2.5.29.15', Buffer.from([0x05, 0x00])), uri],
      keyUsageNotAsn1: [ext('2.5.29.15', Buffer.from([0xff, 0xff])), uri],
      unknownExtension: [ext('1.2.3.4', Buffer.from([0xff])), uri],
      latin1Uri: [san(tlv(0x86, Buffer.from([0x73, 0xe9, 0x41])))],
      utf8Uri: [san(tlv(0x86, Buffer.from('sé', 'utf8')))],
      nulInDns: [san(tlv(0x82, Buffer.from([0x61, 0x00, 0x62])))],
      emptyDns: [san(tlv(0x82, Buffer.alloc(0)))],
      emptySan: [san()],
      basicConstraintsPathLenOnly: [ext('2.5.29.19', tlv(0x30, Buffer.from([2, 1, 3])))],
      basicConstraintsGarbage: [ext('2.5.29.19', Buffer.from([0x05, 0x00]))],
      constructedUri: [san(tlv(0xa6, tlv(0x16, Buffer.from('x'))))],
      fiveOctetIp: [san(tlv(0x87, Buffer.from([1, 2, 3, 4, 5])))],
      sanTrailingByte: [
        ext('2.5.29.17', Buffer.concat([tlv(0x30, tlv(0x86, Buffer.from('x'))), Buffer.from([0])])),
      ],
      duplicateSan: [uri, uri],
    }
    for (const [name, exts] of Object.entries(cases)) {
      const der = signed(cri(tlv(0xa0, extensionRequest(...exts))))
      const pk = verdict(() => parseCsrDerWithPkijs(der))
      const combined = verdict(() => parseCsrDer(der))
      if (isRefusal(pk) && isRefusal(combined)) expect(combined.code, name).toBe(pk.code)
      else expect(combined, name).toEqual(pk)
    }
    const latin1 = signed(cri(tlv(0xa0, extensionRequest(...cases.latin1Uri!))))
    expect(readCsrFast(latin1)!.uris).toEqual(['s\u00e9A'])
  })

  it('an EC point with a coordinate ≥ p (a second encoding of a key) is refused both ways', () => {
    // A P-256 point with small x, and the same x plus the field prime.
    const p = (1n << 256n) - (1n << 224n) + (1n << 192n) + (1n << 96n) - 1n
    const b = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn
    const { x, y, hex } = smallPoint(p, b, 32)
    const good = Buffer.from(spki)
    hex(x).copy(good, 27)
    hex(y).copy(good, 59)
    expect(() => createPublicKey({ key: good, format: 'der', type: 'spki' })).not.toThrow()
    const twin = Buffer.from(good)
    hex(x + p).copy(twin, 27)
    const der = Uint8Array.from(
      tlv(
        0x30,
        tlv(0x30, Buffer.from([2, 1, 0]), tlv(0x30), twin, tlv(0xa0)),
        ECDSA_SHA256,
        tlv(0x03, Buffer.from([0, 0x30, 0])),
      ),
    )
    const expected = { code: 'ERR_CSR_INVALID', message: 'CSR public key is malformed' }
    expect(verdict(() => readCsrFast(der))).toEqual(expected)
    expect(verdict(() => parseCsrDerWithPkijs(der))).toEqual(expected)
  })

  it('P-384 (imported from DER, not JWK): a point off the curve or a coordinate ≥ p is refused both ways', () => {
    const p384 = FIXTURE_KEYS['ec-p384'][0]!
    const good = p384.publicKey.export({ type: 'spki', format: 'der' })
    const ECDSA_SHA384 = Buffer.from('300a06082a8648ce3d040303', 'hex')
    const csrWith = (keyDer: Buffer): Uint8Array => {
      const info = tlv(0x30, Buffer.from([2, 1, 0]), tlv(0x30), keyDer, tlv(0xa0))
      const sig = sign('sha384', info, p384.privateKey)
      return Uint8Array.from(tlv(0x30, info, ECDSA_SHA384, tlv(0x03, Buffer.from([0]), sig)))
    }
    // The canonical key reads (and verifies) on the fast path.
    expect(readCsrFast(csrWith(good))!.keyType).toBe('ec-p384')
    const offCurve = Buffer.from(good)
    offCurve[offCurve.length - 1]! ^= 1 // y changed: no longer on the curve
    // A point with small x, then the same x plus the field prime (still 48 octets).
    const p = (1n << 384n) - (1n << 128n) - (1n << 96n) + (1n << 32n) - 1n
    const b = BigInt(
      '0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef',
    )
    const { x, y, hex } = smallPoint(p, b, 48)
    const point = good.length - 96 // the 48-octet x, then y, end the SPKI
    const small = Buffer.from(good)
    hex(x).copy(small, point)
    hex(y).copy(small, point + 48)
    expect(() => createPublicKey({ key: small, format: 'der', type: 'spki' })).not.toThrow()
    const twin = Buffer.from(small)
    hex(x + p).copy(twin, point)
    const expected = { code: 'ERR_CSR_INVALID', message: 'CSR public key is malformed' }
    for (const bad of [offCurve, twin]) {
      const der = csrWith(bad)
      expect(verdict(() => readCsrFast(der))).toEqual(expected)
      expect(verdict(() => parseCsrDerWithPkijs(der))).toEqual(expected)
    }
  })

  it('another key signing: no proof of possession, both ways', () => {
    const der = signed(
      cri(tlv(0xa0, extensionRequest(sanExt()))),
      FIXTURE_KEYS['ec-p256'][1]!.privateKey,
    )
    const fast = verdict(() => readCsrFast(der))
    expect(fast).toMatchObject({
      code: 'ERR_CSR_INVALID',
      message: expect.stringMatching(/does not verify/),
    })
    expect(fast).toEqual(verdict(() => parseCsrDerWithPkijs(der)))
  })
})

/**
 * The curve point (y² = x³ - 3x + b over the prime p ≡ 3 mod 4) with the smallest x, and
 * coordinates as `bytes` octets big-endian: a key whose x plus p still fits those octets.
 */
function smallPoint(p: bigint, b: bigint, bytes: number) {
  const pow = (a: bigint, e: bigint): bigint => {
    let r = 1n
    for (a %= p; e; e >>= 1n, a = (a * a) % p) if (e & 1n) r = (r * a) % p
    return r
  }
  const hex = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(bytes * 2, '0'), 'hex')
  for (let x = 1n; ; x++) {
    const rhs = (((x ** 3n - 3n * x + b) % p) + p) % p
    const y = pow(rhs, (p + 1n) / 4n)
    if ((y * y) % p === rhs) return { x, y, hex }
  }
}
