import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request, type Agent } from 'undici'
import { openssl } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import {
  expectOAuthError,
  grant,
  introspect,
  mapLimit,
  refresh,
  revokeCertificate,
} from '../helpers/tokens.js'

const CERTS = 10
const PER_CERT = 100

describe('revoking a certificate cascades to its tokens at once (LIFECYCLE invariant 5)', () => {
  let s: TestServer
  let rsAgent: Agent
  beforeAll(async () => {
    // Some tests here renew with the same key (CONTRACT "Lineages": renewal.require_new_key).
    s = await TestServer.start({ renewal: { require_new_key: false } })
    rsAgent = s.agent(await s.enroll('spiffe://example.org/resource-server'))
  })
  afterAll(() => s.close())

  it(`1,000 tokens over ${CERTS} certificates: revoking one flips exactly its ${PER_CERT} tokens, and no other`, async () => {
    const creds = await Promise.all(
      Array.from({ length: CERTS }, (_, i) => s.enroll(`spiffe://example.org/cascade/w${i}`)),
    )
    const agents = creds.map((c) => s.agent(c))
    const jobs = Array.from({ length: CERTS * PER_CERT }, (_, i) => i % CERTS)
    const tokens = await mapLimit(jobs, 20, async (c) => ({
      cert: c,
      ...(await grant(s, agents[c]!)),
    }))
    expect(new Set(tokens.map((t) => t.access_token)).size).toBe(CERTS * PER_CERT)

    const victim = 3
    const check = (t: string) => introspect(s, rsAgent, t).then((r) => r.body.active as boolean)
    // The very next request after the revocation already sees it.
    await revokeCertificate(s, creds[victim]!.serial, 'keyCompromise')
    const first = tokens.find((t) => t.cert === victim)!
    expect(await check(first.access_token)).toBe(false)

    const after = await mapLimit(tokens, 20, async (t) => ({
      cert: t.cert,
      access: await check(t.access_token),
      refresh: await check(t.refresh_token),
    }))
    const flipped = after.filter((t) => !t.access)
    expect(flipped).toHaveLength(PER_CERT)
    expect(flipped.every((t) => t.cert === victim)).toBe(true)
    expect(after.filter((t) => !t.refresh).every((t) => t.cert === victim)).toBe(true)
    expect(after.filter((t) => !t.refresh)).toHaveLength(PER_CERT)

    // The victim's families cannot be refreshed; the others can.
    expectOAuthError(await refresh(s, agents[victim]!, first.refresh_token), 401, 'invalid_client')
    const survivor = tokens.find((t) => t.cert !== victim)!
    expect((await refresh(s, agents[survivor.cert]!, survivor.refresh_token)).status).toBe(200)

    // The cascade is audited, and the next CRL lists the certificate.
    const cascade = await s.store.audit.list({ action: 'token.family.revoke_cascade' })
    expect(cascade.at(-1)!.details).toMatchObject({
      cause: 'certificate_revoked',
      families: PER_CERT,
      access_tokens: PER_CERT,
    })
    const crl = await request(`${s.url}/v1/crl`, { dispatcher: rsAgent })
    const text = openssl(
      ['crl', '-inform', 'DER', '-noout', '-text'],
      new Uint8Array(await crl.body.arrayBuffer()),
    ).out
    expect(text.toUpperCase()).toContain(creds[victim]!.serial.toUpperCase())
  }, 120_000)

  it('a keyCompromise revocation reaches every certificate of that key and the families bound to them', async () => {
    const a = await s.enroll('spiffe://example.org/cascade/same-key')
    const b = (await s.renew(a, { sameKey: true })).credential! // same key, renewed
    const ta = await grant(s, a)
    const tb = await grant(s, b)
    await revokeCertificate(s, a.serial, 'keyCompromise')
    for (const t of [ta.access_token, ta.refresh_token, tb.access_token, tb.refresh_token]) {
      expect((await introspect(s, rsAgent, t)).body).toEqual({ active: false })
    }
    expectOAuthError(await refresh(s, b, tb.refresh_token), 401, 'invalid_client')
  })

  it('revoking an ancestor kills the tokens bound to it, not the family that moved on to its renewal', async () => {
    const a = await s.enroll('spiffe://example.org/cascade/moved-on')
    const t = await grant(s, a)
    const b = (await s.renew(a)).credential!
    const r = await refresh(s, b, t.refresh_token) // the family is bound to b now
    expect(r.status).toBe(200)
    await revokeCertificate(s, a.serial)
    const active = async (x: string) => (await introspect(s, rsAgent, x)).body.active as boolean
    expect(await active(t.access_token)).toBe(false) // bound to a
    expect(await active(r.body.access_token)).toBe(true) // bound to b
    expect(await active(r.body.refresh_token)).toBe(true)
    expect((await refresh(s, b, r.body.refresh_token)).status).toBe(200)
    // And revoking b now ends the family.
    const last = await grant(s, b)
    await revokeCertificate(s, b.serial)
    expect(await active(last.refresh_token)).toBe(false)
    expect(await active(last.access_token)).toBe(false)
  })
})
