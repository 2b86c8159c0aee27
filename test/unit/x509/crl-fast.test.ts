import { randomBytes } from 'node:crypto'

import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { buildCrl, crlTbs, REASON_CODES } from '../../../src/x509/crl.js'
import type { CrlParams, RevocationReason, RevokedEntry } from '../../../src/x509/crl.js'
import { buildCrlPkijs, crlTbsPkijs } from '../../../src/x509/crl-pkijs.js'
import { makeChain, openssl, tempDir } from '../../helpers/x509.js'
import type { TestChain } from '../../helpers/x509.js'

// The fast CRL encoder against the pkijs reference: the same TBS byte for byte on small
// inputs (and the same whole CRL for Ed25519, whose signatures are deterministic); on large
// ones — where the reference cannot go — openssl verifies and pkijs parses every entry.

const tmp = tempDir()
afterAll(() => tmp.cleanup())
const DAY = 86_400_000
const REASONS = Object.keys(REASON_CODES) as RevocationReason[]

function serialHex(): string {
  const b = randomBytes(16)
  b[0] = (b[0]! & 0x7f) | 0x40
  return b.toString('hex')
}

const entryArb = fc.record({
  serialHex: fc.uint8Array({ minLength: 1, maxLength: 20 }).map((b) => {
    const bytes = Buffer.from(b)
    bytes[0] = (bytes[0]! & 0x7f) | 0x01 // positive, non-zero, minimal
    return bytes.toString('hex')
  }),
  revokedAt: fc.date({
    min: new Date('1990-01-01'),
    max: new Date('2080-01-01'),
    noInvalidDate: true,
  }),
  reason: fc.constantFrom(...REASONS),
})

describe.each(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const)('%s issuer', (type) => {
  let chain: TestChain
  beforeAll(async () => {
    chain = await makeChain(type)
  })

  it('TBS is byte-identical to the pkijs encoder (property)', () => {
    fc.assert(
      fc.property(
        fc.array(entryArb, { maxLength: 12 }),
        fc.bigInt({ min: 0n, max: (1n << 159n) - 1n }),
        fc.date({ min: new Date('1970-01-01'), max: new Date('2090-01-01'), noInvalidDate: true }),
        (revoked, crlNumber, thisUpdate) => {
          const p: CrlParams = {
            issuer: chain.intermediate,
            crlNumber,
            thisUpdate,
            nextUpdate: new Date(thisUpdate.getTime() + DAY),
            revoked,
          }
          expect(Buffer.from(crlTbs(p)).equals(Buffer.from(crlTbsPkijs(p)))).toBe(true)
        },
      ),
      { numRuns: 40 },
    )
  })

  it('the whole CRL verifies with openssl; Ed25519 CRLs are identical to pkijs', () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000)
    const p: CrlParams = {
      issuer: chain.intermediate,
      crlNumber: 9n,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + DAY),
      revoked: REASONS.map((reason) => ({ serialHex: serialHex(), revokedAt: now, reason })),
    }
    const der = buildCrl(p)
    if (type === 'ed25519')
      expect(Buffer.from(der).equals(Buffer.from(buildCrlPkijs(p)))).toBe(true)
    const ca = tmp.write(`ca-${type}.pem`, chain.rootPem + chain.intermediatePem)
    const path = tmp.write(`small-${type}.crl`, der)
    const r = openssl(['crl', '-inform', 'DER', '-in', path, '-CAfile', ca, '-verify', '-noout'])
    expect(r.out).toContain('verify OK')
  })
})

describe('large CRLs', () => {
  let chain: TestChain
  beforeAll(async () => {
    chain = await makeChain('ec-p256')
  })

  it('100,000 entries: built, verified by openssl, every entry read back by pkijs', () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000)
    const revoked: RevokedEntry[] = Array.from({ length: 100_000 }, (_, i) => ({
      serialHex: serialHex(),
      revokedAt: new Date(now.getTime() - i * 1000),
      reason: REASONS[i % REASONS.length]!,
    }))
    const p: CrlParams = {
      issuer: chain.intermediate,
      crlNumber: 123_456n,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + DAY),
      revoked,
    }
    // The pkijs reference cannot build even 2,000 (asn1js's node limit): the reason for crl.ts.
    expect(() => buildCrlPkijs({ ...p, revoked: revoked.slice(0, 2000) })).toThrow()
    const der = buildCrl(p)
    const ca = tmp.write('ca-large.pem', chain.rootPem + chain.intermediatePem)
    const path = tmp.write('large.crl', der)
    const r = openssl(['crl', '-inform', 'DER', '-in', path, '-CAfile', ca, '-verify', '-noout'])
    expect(r.out).toContain('verify OK')

    const parsed = asn1js.fromBER(der, { maxNodes: 10_000_000 })
    expect(parsed.offset).toBe(der.length)
    const crl = new pkijs.CertificateRevocationList({ schema: parsed.result })
    expect(crl.revokedCertificates).toHaveLength(100_000)
    const seen = crl.revokedCertificates!.map((e) =>
      Buffer.from(e.userCertificate.valueBlock.valueHexView).toString('hex'),
    )
    expect(seen).toEqual(revoked.map((e) => e.serialHex))
    expect(crl.revokedCertificates![1]!.revocationDate.value.getTime()).toBe(now.getTime() - 1000)
  })
})
