import { describe, expect, it } from 'vitest'
import { changesBetween } from './db-changes.js'
import { expectOcspAnswer } from './ocsp.js'

/*
 * The harness's own judgements, on made-up states and answers: what it lets a refused request
 * change (contract, "Operations": rate-limit counters and bounded refusal events, nothing else)
 * and which OCSP answers it takes for a refusal in the protocol's terms (RFC 6960 §2.3).
 */

const row = (r: Record<string, unknown>) => JSON.stringify(r)
const counter = (peer: string, window_start: number, failures: number) =>
  row({ peer, window_start, failures })
const event = (id: number, action: string) => row({ id, action })

function state(tables: Record<string, string[]>): Map<string, unknown[]> {
  return new Map(Object.entries(tables))
}

const base = {
  auth_failures: [counter('127.0.0.1', 1000, 3)],
  audit_events: [event(1, 'certificate.enroll')],
  certificates: [row({ serial: 'aa', status: 'valid' })],
}
const after = (change: Partial<typeof base>) =>
  changesBetween(state(base), state({ ...base, ...change }), 'x')

describe('changesBetween', () => {
  it('lets a refusal count: one more failure, a later window, a new peer', () => {
    expect(after({ auth_failures: [counter('127.0.0.1', 1000, 4)] })).toEqual([])
    expect(after({ auth_failures: [counter('127.0.0.1', 9000, 1)] })).toEqual([])
    const two = [counter('127.0.0.1', 1000, 3), counter('::1', 2000, 1)]
    expect(after({ auth_failures: two })).toEqual([])
  })

  it.for([
    ['a lowered count', [counter('127.0.0.1', 1000, 2)]],
    ['a removed counter', []],
    ['an earlier window', [counter('127.0.0.1', 500, 9)]],
    ['another column', [row({ peer: '127.0.0.1', window_start: 1000, failures: 4, x: 1 })]],
  ] as const)('refuses %s', ([, rows]) => {
    expect(() => after({ auth_failures: [...rows] })).toThrow()
  })

  it('lets a refusal write the bounded refusal events only, and returns them', () => {
    const events = [...base.audit_events, event(2, 'auth.rate_limited'), event(3, 'token.refused')]
    expect(after({ audit_events: events })).toEqual(['auth.rate_limited', 'token.refused'])
    expect(() =>
      after({ audit_events: [...base.audit_events, event(2, 'entry.create')] }),
    ).toThrow()
    expect(() => after({ audit_events: [] })).toThrow()
  })

  it('refuses any change to another table', () => {
    expect(() => after({ certificates: [row({ serial: 'aa', status: 'revoked' })] })).toThrow()
  })
})

describe('expectOcspAnswer', () => {
  const trust = { bundlePem: '', issuerPem: '' }
  const answer = (status: number, hex: string, type = 'application/ocsp-response') => ({
    status,
    headers: { 'content-type': type, 'cache-control': 'no-store' },
    body: undefined,
    text: '',
    bytes: Buffer.from(hex, 'hex'),
  })

  it('takes the unsigned OCSPResponse of the expected status', () => {
    expectOcspAnswer(answer(200, '30030a0101'), 'malformedRequest', trust, 'x')
    expectOcspAnswer(answer(200, '30030a0106'), 'unauthorized', trust, 'x')
  })

  it.for([
    ['another status', answer(200, '30030a0106')],
    ['tryLater', answer(200, '30030a0103')],
    ['a 400', answer(400, '30030a0101')],
    ['another content type', answer(200, '30030a0101', 'application/problem+json')],
    ['trailing bytes', answer(200, '30030a010100')],
  ] as const)('refuses %s for malformedRequest', ([, r]) => {
    expect(() => expectOcspAnswer(r, 'malformedRequest', trust, 'x')).toThrow()
  })
})
