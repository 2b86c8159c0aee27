import { describe, expect, it } from 'vitest'
import { backoffDelay, refreshTime, renewalTime, sleep } from '../../src/agent/schedule.js'

describe('renewalTime', () => {
  it('is 2/3 of the lifetime left at receipt, ± 5 % jitter, never after notAfter', () => {
    const received = 1_000_000
    const notAfter = received + 9_000
    expect(renewalTime(received, notAfter, () => 0.5)).toBe(received + 6_000)
    expect(renewalTime(received, notAfter, () => 0)).toBeCloseTo(received + 6_000 - 450)
    expect(renewalTime(received, notAfter, () => 0.999999)).toBeCloseTo(received + 6_000 + 450, 0)
    expect(renewalTime(received, received - 1)).toBe(received - 1)
  })

  it('ignores the backdated notBefore: only receipt and notAfter count', () => {
    // A 9 s certificate backdated 1 m still renews 6 s after receipt.
    expect(renewalTime(60_000, 69_000, () => 0.5)).toBe(66_000)
  })
})

describe('refreshTime', () => {
  it('is 2/3 of the access token lifetime', () => {
    expect(refreshTime(0, 300_000)).toBe(200_000)
  })
})

describe('backoffDelay', () => {
  it('doubles from 1 s, capped at a tenth of the lifetime and at 60 s, never below 1 s', () => {
    const hour = 3_600_000
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, hour))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000,
    ])
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, 30_000))).toEqual([1_000, 2_000, 3_000, 3_000])
    expect(backoffDelay(5, 9_000)).toBe(1_000)
  })
})

describe('sleep', () => {
  it('returns early, without throwing, when aborted', async () => {
    const stop = new AbortController()
    const started = Date.now()
    setTimeout(() => stop.abort(), 20)
    await sleep(10_000, stop.signal)
    expect(Date.now() - started).toBeLessThan(1_000)
  })
})
