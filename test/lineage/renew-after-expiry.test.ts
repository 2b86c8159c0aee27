import { X509Certificate } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expectProblem, foreignCredential } from '../helpers/ca.js'
import {
  expectCloneProblem,
  generationStates,
  renewAfterExpiry,
  renewalProof,
} from '../helpers/lineage.js'
import { makeCsr, type CsrKey } from '../helpers/openssl.js'
import { sleep, TestServer, type Credential } from '../helpers/server.js'
import { expectOAuthError, token } from '../helpers/tokens.js'

/**
 * Renewal after expiry (CONTRACT "Lineages"): no client certificate; a short single-use JWT
 * signed by the expired certificate's key, the certificate in `x5c`. Only the current
 * generation of an active lineage, within the entry's `renew_after_expiry`, never a revoked one.
 */
describe('renewal after expiry with a proof of possession', () => {
  let s: TestServer
  let n = 0
  const csr = () => makeCsr().csrPem

  /** An entry allowing renewal `grace` after expiry, and a certificate of it that has expired. */
  async function expired(grace: string | null = '1h', key?: CsrKey): Promise<Credential> {
    const id = `spiffe://example.org/expiry/w${++n}`
    const entryId = await s.createEntry(id, grace === null ? {} : { renew_after_expiry: grace })
    const cred = await s.enroll(id, { entryId, ttl: '2s', key })
    await untilExpired(cred)
    return cred
  }
  /** Waits (for real: TLS sees real time) until the certificate is past its notAfter. */
  const untilExpired = (c: Credential) =>
    sleep(
      Math.max(0, new Date(new X509Certificate(c.certPem).validTo).getTime() - Date.now()) + 1100,
    )

  beforeAll(async () => {
    s = await TestServer.start({ certificates: { backdate: '1s' } })
  })
  afterAll(() => s.close())

  it('accepted inside the grace with a valid proof, for every key type; the new certificate works', async () => {
    for (const key of ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const) {
      const cred = await expired('1h', key)
      expectOAuthError(await token(s, cred), 401, 'invalid_client') // no token for an expired one
      const r = await renewAfterExpiry(s, await renewalProof(s, cred), csr())
      expect(r.status, `${key}: ${r.text}`).toBe(201)
      expect(r.body.generation).toBe(2)
      const audit = await s.store.audit.list({
        subject: r.body.serial,
        action: 'certificate.renew',
      })
      expect(audit[0]!.details).toMatchObject({ renewed_from: cred.serial, after_expiry: true })
    }
  })

  it('the renewed certificate authenticates (its first use makes it current)', async () => {
    const cred = await expired()
    const { csrPem, keyPem } = makeCsr()
    const r = await renewAfterExpiry(s, await renewalProof(s, cred), csrPem)
    expect(r.status, r.text).toBe(201)
    const next = { certPem: r.body.chain, keyPem }
    expect((await token(s, next)).status).toBe(200)
    expect(await generationStates(s, cred.serial)).toMatchObject({ [r.body.serial]: 'current' })
  })

  it('replayed: the same proof renews once', async () => {
    const cred = await expired()
    const proof = await renewalProof(s, cred)
    expect((await renewAfterExpiry(s, proof, csr())).status).toBe(201)
    const again = await renewAfterExpiry(s, proof, csr())
    expect(expectProblem(again, 401)).toMatch(/used already/)
    // A fresh proof (the next generation was never used) may renew again.
    expect((await renewAfterExpiry(s, await renewalProof(s, cred), csr())).status).toBe(201)
  })

  it('refused outside the grace, when the entry does not allow it, before expiry', async () => {
    const late = await expired('1s')
    expect(
      expectProblem(await renewAfterExpiry(s, await renewalProof(s, late), csr()), 401),
    ).toMatch(/expired more than 1s ago/)
    const off = await expired(null)
    expect(
      expectProblem(await renewAfterExpiry(s, await renewalProof(s, off), csr()), 401),
    ).toMatch(/does not allow/)
    const id = `spiffe://example.org/expiry/fresh${++n}`
    const fresh = await s.enroll(id, {
      entryId: await s.createEntry(id, { renew_after_expiry: '1h' }),
    })
    expectProblem(await renewAfterExpiry(s, await renewalProof(s, fresh), csr()), 400)
  })

  it('refused with a proof from another key, a bad audience, subject, lifetime or alg', async () => {
    const cred = await expired()
    const other = makeCsr().keyPem
    const bad = [
      await renewalProof(s, cred, { signWith: other }),
      await renewalProof(s, cred, { claims: { aud: 'https://elsewhere.example/v1/renew' } }),
      await renewalProof(s, cred, { claims: { sub: 'spiffe://example.org/someone-else' } }),
      await renewalProof(s, cred, { lifetimeS: 600 }),
      await renewalProof(s, cred, { claims: { jti: undefined } }),
      await renewalProof(s, cred, { claims: { exp: Math.floor(Date.now() / 1000) - 5 } }),
    ]
    for (const proof of bad) expectProblem(await renewAfterExpiry(s, proof, csr()), 401)
    expectProblem(
      await s.call('POST', '/v1/renew', {
        headers: { authorization: 'Bearer x.y.z' },
        json: { csr: csr() },
      }),
      401,
    )
    // A certificate of another CA in x5c, signed with its own key.
    const foreign = foreignCredential({
      san: `URI:${new X509Certificate(cred.certPem).subjectAltName!.slice(4)}`,
      serialHex: cred.serial,
    })
    expect(
      expectProblem(await renewAfterExpiry(s, await renewalProof(s, foreign), csr()), 401),
    ).toMatch(/not issued by this CA/)
    // Nothing was issued.
    expect(await generationStates(s, cred.serial)).toEqual({ [cred.serial]: 'expired' })
  })

  it('never for a revoked certificate', async () => {
    const cred = await expired()
    const revoked = await s.call('POST', `/v1/certificates/${cred.serial}/revoke`, { as: s.admin })
    expect(revoked.status).toBe(200)
    expect(
      expectProblem(await renewAfterExpiry(s, await renewalProof(s, cred), csr()), 401),
    ).toMatch(/revoked/)
  })

  it('a retired generation with a valid proof is a clone: 403, lineage contained', async () => {
    const id = `spiffe://example.org/expiry/retired${++n}`
    const entryId = await s.createEntry(id, { renew_after_expiry: '1h' })
    const a = await s.enroll(id, { entryId, ttl: '3s' })
    const renewed = (await s.renew(a, { ttl: '1h' })).credential!
    expect((await token(s, renewed)).status).toBe(200) // a retired
    await untilExpired(a)
    expectCloneProblem(await renewAfterExpiry(s, await renewalProof(s, a), csr()))
    expectOAuthError(await token(s, renewed), 401, 'invalid_client')
  })
})
