import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  cloneAlarms,
  crlSerials,
  expectCloneProblem,
  generationStates,
  lineageOf,
  ShiftedClock,
} from '../helpers/lineage.js'
import { TestServer } from '../helpers/server.js'
import {
  expectOAuthError,
  grant,
  introspect,
  refresh,
  token,
  type Cred,
} from '../helpers/tokens.js'

/**
 * Two holders of one credential (CONTRACT "Lineages … cloned credentials"): whoever uses the
 * lineage second is detected, and the whole lineage — both holders' certificates and tokens —
 * is contained in the transaction that refuses the request.
 */
describe('cloned credentials are detected and contained', () => {
  let s: TestServer
  let rs: Cred
  const clock = new ShiftedClock()
  let n = 0
  const enroll = () => s.enroll(`spiffe://example.org/clones/w${++n}`)
  const active = async (t: string) => (await introspect(s, rs, t)).body.active as boolean
  beforeAll(async () => {
    s = await TestServer.start({}, { clock })
    rs = await s.enroll('spiffe://example.org/clones/resource-server')
  })
  afterAll(() => s.close())

  it('two holders of one certificate and key: the second renewal is refused and contains both', async () => {
    const original = await enroll()
    const copy = { ...original } // the same files on a second host
    const t0 = await grant(s, original)
    // Holder 1 renews and uses its new certificate.
    const first = (await s.renew(original)).credential!
    const t1 = await grant(s, first)
    // Holder 2, still on the copied files, renews.
    const second = await s.renew(copy)
    expectCloneProblem(second)
    const lineage = await lineageOf(s, original.serial)
    expect(lineage.status).toBe('revoked')
    for (const t of [t0.access_token, t0.refresh_token, t1.access_token, t1.refresh_token])
      expect(await active(t)).toBe(false)
    const crl = await crlSerials(s)
    expect([crl.has(original.serial), crl.has(first.serial)]).toEqual([true, true])
    const alarms = (await cloneAlarms(s)).filter((e) => e.subject === lineage.id)
    expect(alarms).toHaveLength(1)
    expect(alarms[0]!.details).toMatchObject({
      lineage_id: lineage.id,
      presented: { serial: original.serial, generation: 1 },
      current: { serial: first.serial, generation: 2 },
    })
    // Holder 1's certificate is dead too: the operator re-enrols whichever host is real.
    expectOAuthError(await token(s, first), 401, 'invalid_client')
  })

  it("the thief's branch: key and refresh token copied, thief renews and refreshes first", async () => {
    const owner = await enroll()
    const ownerTokens = await grant(s, owner)
    // The thief holds copies of the key, the certificate and the refresh token.
    const thief = (await s.renew(owner)).credential!
    const stolen = await refresh(s, thief, ownerTokens.refresh_token)
    expect(stolen.status, stolen.text).toBe(200) // the family now follows the thief's branch
    // The owner's next renewal: its generation was retired by the thief's first use.
    expectCloneProblem(await s.renew(owner))
    for (const t of [stolen.body.access_token, stolen.body.refresh_token, ownerTokens.access_token])
      expect(await active(t)).toBe(false)
    expectOAuthError(await refresh(s, thief, stolen.body.refresh_token), 401, 'invalid_client')
    expect((await lineageOf(s, owner.serial)).status).toBe('revoked')
  })

  it("the thief's branch, the owner refreshing: refused in the grace, contained after it", async () => {
    const owner = await enroll()
    const ownerTokens = await grant(s, owner)
    const thief = (await s.renew(owner)).credential!
    const stolen = await refresh(s, thief, ownerTokens.refresh_token)
    expect(stolen.status).toBe(200)
    const r = await refresh(s, owner, ownerTokens.refresh_token)
    expectOAuthError(r, 401, 'invalid_client')
    expect(await active(stolen.body.refresh_token)).toBe(true) // within the grace: nothing yet
    clock.offsetMs = 61_000
    try {
      const late = await refresh(s, owner, ownerTokens.refresh_token)
      expectOAuthError(late, 401, 'invalid_client')
      expect(late.body.error_description).toMatch(/suspected clone/)
      expect(await active(stolen.body.refresh_token)).toBe(false)
      expect(await active(stolen.body.access_token)).toBe(false)
    } finally {
      clock.offsetMs = 0
    }
  })

  it('two copies renewing at the same moment: one next generation survives; the other’s first use contains the lineage', async () => {
    const a = await enroll()
    const [r1, r2] = await Promise.all([s.renew({ ...a }), s.renew({ ...a })])
    expect([r1.status, r2.status]).toEqual([201, 201])
    const states = await generationStates(s, a.serial)
    const serials = [r1.credential!, r2.credential!]
    expect(serials.map((c) => states[c.serial]).sort()).toEqual(['next', 'revoked'])
    const replaced = serials.find((c) => states[c.serial] === 'revoked')!
    const survivor = serials.find((c) => states[c.serial] === 'next')!
    expect(
      (await s.call('GET', `/v1/certificates/${replaced.serial}`, { as: s.admin })).body
        .revocation_reason,
    ).toBe('superseded')
    // The replaced one is never in use by anyone legitimate: its first use is a clone.
    const r = await token(s, replaced)
    expectOAuthError(r, 401, 'invalid_client')
    expect(r.body.error_description).toMatch(/suspected clone/)
    expect((await lineageOf(s, a.serial)).status).toBe('revoked')
    expectOAuthError(await token(s, survivor), 401, 'invalid_client')
  })

  it('a renewal racing the first use of the next generation: the lineage ends contained, whatever the order', async () => {
    for (let i = 0; i < 3; i++) {
      const a = await enroll()
      const b = (await s.renew(a)).credential!
      const [used, renewed] = await Promise.all([token(s, b), s.renew({ ...a })])
      // Two holders: one used the next generation while the other renewed from the current.
      expect([used.status, renewed.status]).not.toEqual([200, 201])
      expect((await lineageOf(s, a.serial)).status).toBe('revoked')
    }
  })
})
