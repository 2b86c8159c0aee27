// The strict DER reader's rules, and the DER writer against asn1js/pkijs.
import * as asn1js from 'asn1js'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'

import { x509Time } from '../../../src/x509/der.js'
import { NotDerError, oidText, readDer, UnhandledError } from '../../../src/x509/der-reader.js'
import { oid, smallInteger, x509TimeDer } from '../../../src/x509/der-writer.js'

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex'))

describe('strict DER reader', () => {
  it('accepts minimal DER', () => {
    for (const h of [
      '30 00',
      '30 06 01 01 ff 02 01 00',
      '02 02 00 80',
      '02 01 ff',
      '03 02 05 a0',
      '05 00',
      '06 03 55 1d 11',
      '31 06 02 01 01 02 01 02',
      `04 81 80 ${'00'.repeat(128)}`,
    ]) {
      expect(() => readDer(hex(h)), h).not.toThrow()
    }
  })

  it.each([
    ['trailing bytes', '30 00 00'],
    ['truncated', '30 05 02 01'],
    ['indefinite length', '30 80 00 00'],
    ['long form below 128', '30 81 00'],
    ['leading zero length', '30 82 00 01 05 00'],
    ['BOOLEAN 01', '30 03 01 01 01'],
    ['INTEGER 00 7f', '02 02 00 7f'],
    ['INTEGER ff 80', '02 02 ff 80'],
    ['empty INTEGER', '02 00'],
    ['BIT STRING 8 unused', '03 02 08 00'],
    ['BIT STRING padding bits set', '03 02 05 a1'],
    ['NULL with content', '05 01 00'],
    ['OID arc 80', '06 03 55 80 01'],
    ['OID truncated', '06 02 55 9d'],
    ['constructed OCTET STRING', '24 03 04 01 00'],
    ['end-of-contents tag', '00 00'],
  ])('refuses %s as not DER', (_, h) => {
    expect(() => readDer(hex(h))).toThrow(NotDerError)
  })

  it.each([
    ['high tag number', '1f 81 00 00'],
    ['unsorted SET OF', '31 06 02 01 02 02 01 01'],
  ])('leaves %s to another reader', (_, h) => {
    expect(() => readDer(hex(h))).toThrow(UnhandledError)
  })
})

describe('DER writer', () => {
  it('OIDs encode and read back as asn1js does', () => {
    const arc = fc.oneof(
      fc.integer({ min: 0, max: 200 }),
      fc.nat(),
      fc.bigInt({ min: 0n, max: 1n << 70n }),
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 0, max: 39 }),
        fc.array(arc),
        (a, b, rest) => {
          const dotted = [a, b, ...rest].join('.')
          const mine = oid(dotted)
          expect(Buffer.from(mine)).toEqual(
            Buffer.from(new asn1js.ObjectIdentifier({ value: dotted }).toBER()),
          )
          expect(oidText(mine, readDer(mine))).toBe(dotted)
        },
      ),
    )
  })

  it('X.509 times and small INTEGERs match asn1js', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1900, 0, 1), max: Date.UTC(9999, 11, 31) }), (ms) => {
        const d = new Date(ms - (ms % 1000))
        expect(Buffer.from(x509TimeDer(d))).toEqual(Buffer.from(x509Time(d).toSchema().toBER()))
      }),
    )
    for (const n of [0, 1, 127, 128, 255, 256, 65535, 2 ** 31 - 1]) {
      expect(Buffer.from(smallInteger(n))).toEqual(
        Buffer.from(new asn1js.Integer({ value: n }).toBER()),
      )
    }
  })
})
