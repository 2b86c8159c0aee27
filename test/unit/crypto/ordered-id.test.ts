import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { orderedTokenId, uuidV7 } from '../../../src/crypto/ordered-id.js'
import { newSecretToken, secretMatches, secretTokenId } from '../../../src/crypto/secret-token.js'

const MS = fc.integer({ min: 0, max: 2 ** 48 - 1 })
const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe('time-ordered identifiers', () => {
  it('uuidV7 is an RFC 9562 version 7 UUID whose first 48 bits are the time', () => {
    fc.assert(
      fc.property(MS, (ms) => {
        const id = uuidV7(ms)
        expect(id).toMatch(UUID_V7)
        expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(ms)
      }),
    )
  })

  it('a later millisecond always sorts after an earlier one, byte for byte (both formats)', () => {
    fc.assert(
      fc.property(MS, MS, (a, b) => {
        fc.pre(a !== b)
        const [lo, hi] = a < b ? [a, b] : [b, a]
        expect(uuidV7(lo) < uuidV7(hi)).toBe(true)
        expect(
          Buffer.compare(Buffer.from(orderedTokenId(lo)), Buffer.from(orderedTokenId(hi))),
        ).toBe(-1)
      }),
    )
  })

  it('ids of the same millisecond differ (the random part)', () => {
    const now = Date.now()
    const uuids = new Set(Array.from({ length: 10_000 }, () => uuidV7(now)))
    const tokens = new Set(Array.from({ length: 10_000 }, () => orderedTokenId(now)))
    expect(uuids.size).toBe(10_000)
    expect(tokens.size).toBe(10_000)
  })

  it('a clock outside the 48-bit range still gives well-formed ids', () => {
    for (const ms of [-1, Number.NaN, 2 ** 60, 1.5]) {
      expect(uuidV7(ms)).toMatch(UUID_V7)
      expect(orderedTokenId(ms)).toMatch(/^[A-Za-z0-9_-]{16}$/)
    }
  })

  it('secret tokens keep their format: a 16-character id, 256 secret bits, found by id', () => {
    const t = newSecretToken()
    expect(t.token).toMatch(/^[A-Za-z0-9_-]{59}$/)
    expect(secretTokenId(t.token)).toBe(t.id)
    expect(t.token.startsWith(t.id)).toBe(true)
    expect(secretMatches(t.token, t.hash)).toBe(true)
    // The secret part is not derived from the id or the time.
    const u = newSecretToken()
    expect(u.token.slice(16)).not.toBe(t.token.slice(16))
  })
})
