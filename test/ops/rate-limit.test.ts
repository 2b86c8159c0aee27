import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { peerKey } from '../../src/http/auth-limit.js'
import { dbSnapshot } from '../helpers/ca.js'
import { makeCsr } from '../helpers/openssl.js'
import { ProcessServer } from '../helpers/process-server.js'
import { TestServer, type ApiClient } from '../helpers/server.js'

const LIMIT = 3

/** Connections from another loopback address: another peer, as far as the limit goes. */
const from = (s: ApiClient, address: string, cred?: { certPem: string; keyPem: string }) =>
  new Agent({
    localAddress: address,
    connect: { ca: s.bundlePem, ...(cred ? { cert: cred.certPem, key: cred.keyPem } : {}) },
  })

const badToken = (s: ApiClient, agent: Agent) =>
  s.call('POST', '/v1/enroll', {
    agent,
    headers: { authorization: 'Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
    json: { csr: 'x' },
  })

describe('limits.failed_auth: failed authentications per peer address', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start({ limits: { failed_auth: LIMIT, window: '1m' } })
  })
  afterAll(() => s.close())

  it('bad join tokens: 401 up to the limit, then 429 with Retry-After — even for a right token, which stays unspent', async () => {
    const peer = from(s, '127.0.0.2')
    for (let i = 0; i < LIMIT; i++) expect((await badToken(s, peer)).status).toBe(401)
    const refused = await badToken(s, peer)
    expect(refused.status).toBe(429)
    expect(refused.body.code).toBe('ERR_RATE_LIMITED')
    const retryAfter = Number(refused.headers['retry-after'])
    expect(retryAfter).toBeGreaterThanOrEqual(1)
    expect(retryAfter).toBeLessThanOrEqual(60)

    const entryId = await s.createEntry('spiffe://example.org/limited')
    const token = await s.joinToken(entryId)
    const csr = { csr: makeCsr({ san: 'URI:spiffe://example.org/limited' }).csrPem }
    const before = await dbSnapshot(s)
    const right = await s.call('POST', '/v1/enroll', {
      agent: peer,
      headers: { authorization: `Bearer ${token}` },
      json: csr,
    })
    expect(right.status).toBe(429)
    // A refused request writes nothing but its counter: the token is unspent, no audit row.
    expect(await dbSnapshot(s)).toEqual(before)
    // Another address is not affected, and the token still works from there.
    const other = await s.call('POST', '/v1/enroll', {
      agent: from(s, '127.0.0.3'),
      headers: { authorization: `Bearer ${token}` },
      json: csr,
    })
    expect(other.status, other.text).toBe(201)
  })

  it('missing and unknown client certificates count too; a valid certificate from a blocked address is never throttled', async () => {
    const cred = await s.enroll('spiffe://example.org/valid')
    const untrusted = await s.enroll('spiffe://example.org/revoked-later')
    await s.call('POST', `/v1/certificates/${untrusted.serial}/revoke`, { as: s.admin, json: {} })
    const address = '127.0.0.4'
    const statuses = []
    for (const agent of [from(s, address), from(s, address, untrusted), from(s, address)])
      statuses.push((await s.call('POST', '/v1/renew', { agent, json: {} })).status)
    expect(statuses).toEqual([401, 401, 401])
    const over = await s.call('POST', '/oauth/token', {
      agent: from(s, address),
      form: { grant_type: 'client_credentials' },
    })
    expect([over.status, over.body.error]).toEqual([429, 'invalid_client'])
    expect(over.headers['retry-after']).toBeDefined()
    // The same address with a valid certificate: served, on every mTLS route.
    const valid = from(s, address, cred)
    for (let i = 0; i < 5; i++) {
      const t = await s.call('POST', '/oauth/token', {
        agent: valid,
        form: { grant_type: 'client_credentials' },
      })
      expect(t.status, t.text).toBe(200)
    }
    expect((await s.renew({ ...cred })).status).toBe(201)
  })

  it('the counter is a row per address in the database; one audit event per address and window', async () => {
    const rows = await s.query<{ peer: string; failures: number }>(
      'SELECT peer, failures FROM auth_failures ORDER BY peer',
    )
    expect(rows.find((r) => r.peer === '127.0.0.2')!.failures).toBe(LIMIT + 1)
    expect(rows.find((r) => r.peer === '127.0.0.3')).toBeUndefined()
    // Once over the limit a process answers from memory: no further writes.
    for (let i = 0; i < 5; i++) expect((await badToken(s, from(s, '127.0.0.2'))).status).toBe(429)
    const again = await s.query('SELECT failures FROM auth_failures WHERE peer = ?', '127.0.0.2')
    expect(again).toEqual([{ failures: LIMIT + 1 }])
    const audit = await s.query<{ subject: string }>(
      `SELECT subject FROM audit_events WHERE action = 'auth.rate_limited' ORDER BY subject`,
    )
    expect(audit.map((a) => a.subject)).toEqual(['127.0.0.2', '127.0.0.4'])
  })

  it('counts IPv6 peers by their /64, and IPv4-mapped addresses as IPv4', () => {
    expect(peerKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64')
    expect(peerKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('2001:db8:1:2::/64')
    expect(peerKey('::1')).toBe('0:0:0:0::/64')
    expect(peerKey('::ffff:192.0.2.7')).toBe('192.0.2.7')
    expect(peerKey('192.0.2.7')).toBe('192.0.2.7')
    expect(peerKey(undefined)).toBeUndefined()
  })
})

describe('limits.failed_auth across two workers (state in the database)', () => {
  let s: ProcessServer
  beforeAll(async () => {
    s = await ProcessServer.start(
      { server: { workers: 2 }, limits: { failed_auth: 5 } },
      { workers: 2 },
    )
  })
  afterAll(() => s.close())

  it('each attempt on a connection of its own (spread over both workers): exactly the limit answered 401', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 12; i++) {
      const agent = from(s, '127.0.0.5')
      statuses.push((await badToken(s, agent)).status)
      await agent.close()
    }
    expect(statuses).toEqual([...Array(5).fill(401), ...Array(7).fill(429)])
  })
})
