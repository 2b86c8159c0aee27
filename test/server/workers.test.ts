import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { ProcessServer } from '../helpers/process-server.js'
import type { ApiResponse, Credential } from '../helpers/server.js'

/**
 * `server.workers: 2`: two processes on one socket and one SQLite file. Every request below
 * goes over a connection of its own, so the cluster's round-robin spreads them over both
 * workers; the lifecycle invariants must hold across them.
 */
describe('two server workers on one database', () => {
  let s: ProcessServer
  beforeAll(async () => {
    s = await ProcessServer.start({ server: { workers: 2 } }, { workers: 2 })
  })
  afterAll(() => s.close())

  const form = (cred: Credential, body: Record<string, string>) =>
    s.call('POST', '/oauth/token', { as: cred, form: body })

  it('both workers serve', () => {
    const pids = new Set(
      [...s.logs().matchAll(/"pid":(\d+)[^\n]*certbound serving/g)].map((m) => m[1]),
    )
    expect(pids.size).toBe(2)
  })

  it('50 concurrent redemptions of one join token → exactly one certificate', async () => {
    const spiffeId = 'spiffe://example.org/workers/race'
    const entryId = await s.createEntry(spiffeId)
    const token = await s.joinToken(entryId)
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        s.call('POST', '/v1/enroll', {
          agent: s.agent(),
          headers: { authorization: `Bearer ${token}` },
          json: { csr: makeCsr().csrPem },
        }),
      ),
    )
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((c) => c === 201)).toHaveLength(1)
    expect(statuses.filter((c) => c === 401)).toHaveLength(49)
    const listed = await s.call(
      'GET',
      `/v1/certificates?spiffe_id=${encodeURIComponent(spiffeId)}`,
      { as: s.admin },
    )
    expect(listed.body.items).toHaveLength(1)
  })

  it('20 concurrent refreshes of one refresh token → exactly one success, and the family is dead', async () => {
    const cred = await s.enroll('spiffe://example.org/workers/refresh')
    const granted = await form(cred, { grant_type: 'client_credentials' })
    expect(granted.status, granted.text).toBe(200)
    const refreshToken = granted.body.refresh_token as string
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        form(cred, { grant_type: 'refresh_token', refresh_token: refreshToken }),
      ),
    )
    const ok = results.filter((r) => r.status === 200)
    expect(ok).toHaveLength(1)
    expect(
      results.filter((r) => r.status === 400 && r.body.error === 'invalid_grant'),
    ).toHaveLength(19)
    // The winner's refresh token died with the family (reuse detected).
    const next = await form(cred, {
      grant_type: 'refresh_token',
      refresh_token: ok[0]!.body.refresh_token,
    })
    expect([next.status, next.body.error]).toEqual([400, 'invalid_grant'])
    const introspected = await s.call('POST', '/oauth/introspect', {
      as: cred,
      form: { token: ok[0]!.body.access_token },
    })
    expect(introspected.body.active).toBe(false)
  })

  it('a revocation acknowledged by one worker is in the next CRL and introspection of every worker', async () => {
    const cred = await s.enroll('spiffe://example.org/workers/revoked')
    const observer = await s.enroll('spiffe://example.org/workers/observer')
    const t = await form(cred, { grant_type: 'client_credentials' })
    const r = await s.call('POST', `/v1/certificates/${cred.serial}/revoke`, {
      as: s.admin,
      json: { reason: 'keyCompromise' },
    })
    expect(r.status, r.text).toBe(200)
    const crls = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await request(`${s.url}/v1/crl`, { dispatcher: s.agent() })
        return Buffer.from(await res.body.arrayBuffer())
      }),
    )
    const serial = Buffer.from(cred.serial, 'hex')
    for (const der of crls) expect(der.includes(serial)).toBe(true)
    const answers: ApiResponse[] = await Promise.all(
      Array.from({ length: 8 }, () =>
        s.call('POST', '/oauth/introspect', {
          as: observer,
          form: { token: t.body.access_token },
        }),
      ),
    )
    for (const a of answers) expect(a.body).toEqual({ active: false })
  })

  it('16 clients under token load: no response ≥ 500', async () => {
    const creds = await Promise.all(
      Array.from({ length: 16 }, (_, i) => s.enroll(`spiffe://example.org/workers/load/${i}`)),
    )
    const statuses: number[] = []
    await Promise.all(
      creds.map(async (cred) => {
        const agent = s.agent(cred)
        for (let i = 0; i < 25; i++) {
          const r = await s.call('POST', '/oauth/token', {
            agent,
            form: { grant_type: 'client_credentials' },
          })
          statuses.push(r.status)
        }
      }),
    )
    expect(statuses).toHaveLength(400)
    expect(statuses.filter((c) => c >= 500)).toEqual([])
    expect(statuses.every((c) => c === 200)).toBe(true)
  })

  it('a worker that dies is replaced; SIGTERM drains both and exits 0', async () => {
    const pid = Number(/"pid":(\d+)[^\n]*certbound serving/.exec(s.logs())![1])
    process.kill(pid, 'SIGKILL')
    await expect
      .poll(() => [...s.logs().matchAll(/certbound serving/g)].length, { timeout: 30_000 })
      .toBe(3)
    expect((await s.call('GET', '/healthz', { agent: s.agent() })).status).toBe(200)
    expect(await s.stop()).toBe(0)
  })
})
