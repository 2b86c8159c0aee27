import { describe, expect, it } from 'vitest'
import { configFromObject } from '../../src/config/load.js'
import { CAError } from '../../src/errors.js'

/** The configuration keys issue 7 adds: defaults, and refusals that name the key. */
describe('security configuration keys', () => {
  const refusal = (raw: unknown): string => {
    try {
      configFromObject(raw)
    } catch (e) {
      expect(e).toBeInstanceOf(CAError)
      return (e as CAError).message
    }
    throw new Error(`accepted: ${JSON.stringify(raw)}`)
  }

  it('defaults', () => {
    const c = configFromObject({})
    expect(c.certificates.maxDnsNames).toBe(32)
    expect(c.server.trustedProxyIds).toBeUndefined()
    expect(c.server.proxyAdmin).toBe(false)
    expect(c.tokens.jwksCacheTtlMs).toBe(60_000)
    expect(c.server.handshakes).toEqual({
      maxInFlight: 256,
      maxInFlightPerAddress: 64,
      maxQueued: 1024,
      maxQueuedPerAddress: 256,
      queueTimeoutMs: 10_000,
      timeoutMs: 10_000,
      maxClientBytes: 16_384,
    })
    expect(c.server.connections).toEqual({
      maxPerAddress: 512,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 5_000,
    })
  })

  it('bad values are refused, naming the key', () => {
    expect(refusal({ certificates: { max_dns_names: 0 } })).toMatch(/certificates\.max_dns_names/)
    expect(refusal({ server: { handshakes: { max_client_bytes: 100 } } })).toMatch(
      /server\.handshakes\.max_client_bytes/,
    )
    expect(refusal({ server: { handshakes: { timeout: 'soon' } } })).toMatch(
      /server\.handshakes\.timeout/,
    )
    expect(refusal({ server: { handshakes: { max_in_flight: 1.5 } } })).toMatch(
      /server\.handshakes\.max_in_flight/,
    )
    expect(refusal({ server: { connections: { headers_timeout: '1m' } } })).toMatch(
      /server\.connections.*headers_timeout must not exceed request_timeout/,
    )
    expect(refusal({ server: { trusted_proxy_ids: ['spiffe://other.org/proxy'] } })).toMatch(
      /server\.trusted_proxy_ids\.0/,
    )
    expect(refusal({ server: { proxy_admin: 'yes' } })).toMatch(/server\.proxy_admin/)
    expect(refusal({ server: { connections: { max_per_hour: 3 } } })).toMatch(
      /unknown key "server\.connections\.max_per_hour"/,
    )
  })
})
