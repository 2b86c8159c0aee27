import { describe, expect, it } from 'vitest'

import { isCAError } from '../../../src/errors.js'
import { derToPem, pemBlocks, pemToDer } from '../../../src/x509/pem.js'

const bytes = (n: number, seed = 1): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff)

function pemError(fn: () => unknown): string {
  try {
    fn()
  } catch (e) {
    if (isCAError(e, 'ERR_PEM_INVALID')) return e.message
    throw e
  }
  throw new Error('did not throw')
}

describe('PEM', () => {
  it('derToPem wraps at 64 columns with a trailing newline and round-trips', () => {
    const der = bytes(200)
    const pem = derToPem(der, 'CERTIFICATE')
    const lines = pem.split('\n')
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----')
    expect(lines.slice(1, -2).every((l) => l.length <= 64)).toBe(true)
    expect(lines[1]).toHaveLength(64)
    expect(pem.endsWith('-----END CERTIFICATE-----\n')).toBe(true)
    expect(Array.from(pemToDer(pem, 'CERTIFICATE'))).toEqual(Array.from(der))
    expect(Array.from(pemToDer(pem.replaceAll('\n', '\r\n'), 'CERTIFICATE'))).toEqual(
      Array.from(der),
    )
  })

  it('pemToDer needs exactly one block of the label', () => {
    const a = derToPem(bytes(10), 'CERTIFICATE')
    const k = derToPem(bytes(10, 2), 'PRIVATE KEY')
    expect(pemError(() => pemToDer('not pem', 'CERTIFICATE'))).toMatch(/no PEM block/)
    expect(pemError(() => pemToDer(k, 'CERTIFICATE'))).toMatch(/found PRIVATE KEY/)
    expect(pemError(() => pemToDer(a + a, 'CERTIFICATE'))).toMatch(/found 2/)
    expect(pemToDer(`junk before\n${k}${a}`, 'CERTIFICATE')).toHaveLength(10)
    expect(pemError(() => pemToDer(a.replace('END CERTIFICATE', 'END X'), 'CERTIFICATE'))).toMatch(
      /does not match/,
    )
    expect(
      pemError(() =>
        pemToDer('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 'CERTIFICATE'),
      ),
    ).toMatch(/base64/)
    expect(pemError(() => pemToDer(a.replace(/\n.{4}/, '\n$$$$'), 'CERTIFICATE'))).toMatch(/base64/)
  })

  it('accepts NEW CERTIFICATE REQUEST for CERTIFICATE REQUEST only', () => {
    const legacy = derToPem(bytes(5), 'NEW CERTIFICATE REQUEST')
    expect(pemToDer(legacy, 'CERTIFICATE REQUEST')).toHaveLength(5)
    expect(pemError(() => pemToDer(legacy, 'CERTIFICATE'))).toMatch(/expected a PEM CERTIFICATE/)
  })

  it('pemBlocks returns all blocks of a label in order', () => {
    const text =
      [bytes(3, 1), bytes(4, 2)].map((d) => derToPem(d, 'CERTIFICATE')).join('') +
      derToPem(bytes(2), 'X')
    const blocks = pemBlocks(text, 'CERTIFICATE')
    expect(blocks.map((b) => b.length)).toEqual([3, 4])
    expect(pemBlocks('', 'CERTIFICATE')).toEqual([])
  })
})
