import { beforeAll, describe, expect, it } from 'vitest'

import { generateKeyPair } from '../../../src/crypto/keys.js'
import { parseCertificate } from '../../../src/x509/certificate.js'
import { derToPem } from '../../../src/x509/pem.js'
import { newSerial, serialFromHex, serialToHex } from '../../../src/x509/serial.js'
import { makeChain, makeLeaf, openssl } from '../../helpers/x509.js'
import type { TestChain } from '../../helpers/x509.js'

describe('newSerial', () => {
  it('10,000 serials: 16 bytes, positive, minimal, first byte 0x40..0x7f, all distinct', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 10_000; i++) {
      const s = newSerial()
      expect(s.length).toBe(16)
      expect(s[0]).toBeGreaterThanOrEqual(0x40)
      expect(s[0]).toBeLessThanOrEqual(0x7f)
      seen.add(serialToHex(s))
    }
    expect(seen.size).toBe(10_000)
  })

  it('serialToHex is lowercase, two digits per byte; serialFromHex inverts it', () => {
    expect(serialToHex(new Uint8Array([0x40, 0x0a, 0xff]))).toBe('400aff')
    expect(Array.from(serialFromHex('400AFF'))).toEqual([0x40, 0x0a, 0xff])
    for (const bad of ['', 'abc', '80', '0001', '00', 'zz', '41'.repeat(21)]) {
      expect(() => serialFromHex(bad)).toThrow(TypeError)
    }
    expect(Array.from(serialFromHex('0080'))).toEqual([0x00, 0x80])
  })
})

describe('serials in certificates', () => {
  let chain: TestChain
  beforeAll(async () => {
    chain = await makeChain('ec-p256')
  })

  it('openssl x509 -serial prints serialToHex (case aside)', async () => {
    const { publicKey } = await generateKeyPair('ec-p256')
    for (let i = 0; i < 5; i++) {
      const der = makeLeaf(chain, publicKey)
      const { out } = openssl(['x509', '-noout', '-serial'], derToPem(der, 'CERTIFICATE'))
      const printed = out.trim().replace(/^serial=/, '')
      expect(printed.toLowerCase()).toBe(parseCertificate(der).serialHex)
      expect(printed).toHaveLength(32)
    }
  })
})
