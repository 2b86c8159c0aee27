import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr, openssl } from '../helpers/openssl.js'
import { sleep, TestServer, type ApiResponse } from '../helpers/server.js'
import {
  dbSnapshot,
  enrollWith,
  expectProblem,
  query,
  tempFiles,
  verifyCrl,
} from '../helpers/ca.js'

interface CrlInfo {
  der: Buffer
  text: string
  number: bigint
  /** serial (lower-case hex) → reason text as openssl prints it, '' when no reason code. */
  revoked: Map<string, string>
}

describe('certificates admin API, revocation and the CRL', () => {
  let s: TestServer
  beforeAll(async () => {
    // Some tests here renew with the same key (CONTRACT "Lineages": renewal.require_new_key).
    s = await TestServer.start({ renewal: { require_new_key: false } })
  })
  afterAll(() => s.close())

  const revoke = (serial: string, json?: unknown): Promise<ApiResponse> =>
    s.call('POST', `/v1/certificates/${serial}/revoke`, {
      as: s.admin,
      ...(json === undefined ? {} : { json }),
    })
  const show = (serial: string) => s.call('GET', `/v1/certificates/${serial}`, { as: s.admin })

  async function fetchCrl(): Promise<CrlInfo> {
    // No client certificate: the CRL is public.
    const r = await request(`${s.url}/v1/crl`, { dispatcher: s.agent() })
    expect(r.statusCode).toBe(200)
    expect(r.headers['content-type']).toBe('application/pkix-crl')
    const der = Buffer.from(await r.body.arrayBuffer())
    expect(der[0]).toBe(0x30) // DER SEQUENCE, not PEM
    const text = verifyCrl(s, der)
    const number = /X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text)
    expect(number, text).not.toBeNull()
    const revoked = new Map<string, string>()
    for (const m of text.matchAll(
      /Serial Number: ([0-9A-F]+)\n\s+Revocation Date: [^\n]+\n((?:\s+CRL entry extensions:\n\s+X509v3 CRL Reason Code:\s*\n\s+([^\n]+)\n)?)/g,
    )) {
      revoked.set(m[1]!.toLowerCase(), m[3]?.trim() ?? '')
    }
    return { der, text, number: BigInt(number![1]!), revoked }
  }

  it('CRL: DER, application/pkix-crl, verified by openssl, issuer, AKI, thisUpdate/nextUpdate; cached between revocations', async () => {
    const a = await fetchCrl()
    expect(a.text).toContain('Version 2 (0x1)')
    expect(a.text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/)
    expect(a.text).toMatch(/Issuer: O = example.org, CN = example.org certbound issuing CA/)
    expect(a.text).toMatch(/Last Update: /)
    expect(a.text).toMatch(/Next Update: /)
    expect(a.text).not.toMatch(/NONE/)
    expect(a.text).toMatch(/X509v3 Authority Key Identifier:/)
    const interSki = openssl(['x509', '-noout', '-ext', 'subjectKeyIdentifier'], s.intermediatePem)
      .out.split('\n')[1]!
      .trim()
    expect(a.text).toContain(interSki)
    const last = new Date(/Last Update: ([^\n]+)/.exec(a.text)![1]!).getTime()
    const next = new Date(/Next Update: ([^\n]+)/.exec(a.text)![1]!).getTime()
    expect(next - last).toBe(24 * 3_600_000)
    expect(next).toBeGreaterThan(Date.now())
    const stateBefore = await query(s, 'SELECT crl_number FROM crl_state')

    // Not rebuilt per request: identical bytes, the same number, no new CRL number spent.
    const b = await fetchCrl()
    expect(b.der.equals(a.der)).toBe(true)
    expect(await query(s, 'SELECT crl_number FROM crl_state')).toEqual(stateBefore)
  })

  it('revocation: 200, status revoked with reason; the next CRL lists it with a higher number', async () => {
    const cred = await s.enroll('spiffe://example.org/crl/one')
    const before = await fetchCrl()
    expect(before.revoked.has(cred.serial)).toBe(false)

    const r = await revoke(cred.serial, { reason: 'superseded' })
    expect(r.status, r.text).toBe(200)
    expect(r.body).toMatchObject({
      serial: cred.serial,
      status: 'revoked',
      revocation_reason: 'superseded',
    })
    expect(r.body.revoked_at).toMatch(/Z$/)

    const after = await fetchCrl()
    expect(after.number).toBeGreaterThan(before.number)
    expect(after.revoked.get(cred.serial)).toBe('Superseded')

    const audit = await s.store.audit.list({ subject: cred.serial })
    expect(audit.map((e) => e.action)).toEqual(['certificate.enroll', 'certificate.revoke'])
    expect(audit[1]!.actor).toBe('spiffe://example.org/admin')
    expect(audit[1]!.details).toMatchObject({ reason: 'superseded' })
  })

  it('CRL number strictly increases with each revocation; a repeated revoke changes nothing', async () => {
    const c1 = await s.enroll('spiffe://example.org/crl/n1')
    const c2 = await s.enroll('spiffe://example.org/crl/n2')
    const n0 = (await fetchCrl()).number
    expect((await revoke(c1.serial, { reason: 'cessationOfOperation' })).status).toBe(200)
    const crl1 = await fetchCrl()
    expect(crl1.number).toBeGreaterThan(n0)
    expect((await revoke(c2.serial, {})).status).toBe(200)
    const crl2 = await fetchCrl()
    expect(crl2.number).toBeGreaterThan(crl1.number)
    expect(crl2.revoked.get(c1.serial)).toBe('Cessation Of Operation')
    expect(crl2.revoked.get(c2.serial)).toBe('') // unspecified: no reasonCode (RFC 5280 §5.3.1)

    // Idempotent: 200, first reason and time kept, nothing written, CRL untouched.
    const first = await show(c1.serial)
    const snapshot = await dbSnapshot(s)
    for (const json of [{ reason: 'superseded' }, {}]) {
      const again = await revoke(c1.serial, json)
      expect(again.status).toBe(200)
      expect(again.body.revocation_reason).toBe('cessationOfOperation')
      expect(again.body.revoked_at).toBe(first.body.revoked_at)
    }
    expect(await dbSnapshot(s)).toEqual(snapshot)
    expect(
      await s.store.audit.list({ subject: c1.serial, action: 'certificate.revoke' }),
    ).toHaveLength(1)
    expect((await fetchCrl()).der.equals(crl2.der)).toBe(true)
  })

  it('keyCompromise reported later for an already revoked certificate: its first reason stays, the key is still blocked', async () => {
    const cred = await s.enroll('spiffe://example.org/crl/late-compromise')
    const twin = (await s.renew(cred, { sameKey: true })).credential!
    expect((await revoke(cred.serial, { reason: 'superseded' })).status).toBe(200)
    const n = (await fetchCrl()).number
    const r = await revoke(cred.serial, { reason: 'keyCompromise' })
    expect(r.status).toBe(200)
    expect(r.body.revocation_reason).toBe('superseded')
    expect((await show(twin.serial)).body).toMatchObject({
      status: 'revoked',
      revocation_reason: 'keyCompromise',
    })
    const crl = await fetchCrl()
    expect(crl.number).toBeGreaterThan(n)
    expect(crl.revoked.get(cred.serial)).toBe('Superseded')
    expect(crl.revoked.get(twin.serial)).toBe('Key Compromise')
    const entryId = await s.createEntry('spiffe://example.org/crl/late-compromise-reuse')
    const csr = makeCsr({ keyPem: cred.keyPem }).csrPem
    expectProblem(await enrollWith(s, await s.joinToken(entryId), { csr }), 400)
  })

  it('a revoke without a body means unspecified', async () => {
    const cred = await s.enroll('spiffe://example.org/crl/nobody')
    const r = await revoke(cred.serial)
    expect(r.status, r.text).toBe(200)
    expect(r.body.revocation_reason).toBe('unspecified')
  })

  it('certificateHold, removeFromCRL, unknown or non-string reasons, unknown fields → 400, nothing changed', async () => {
    const cred = await s.enroll('spiffe://example.org/crl/bad-reasons')
    const before = await dbSnapshot(s)
    const crl = await fetchCrl()
    for (const [json, detail] of [
      [{ reason: 'certificateHold' }, /hold/],
      [{ reason: 'removeFromCRL' }, /removeFromCRL/],
      [{ reason: 'stolen' }, /reason/],
      [{ reason: 'KeyCompromise' }, /reason/],
      [{ reason: 1 }, /reason/],
      [{ reason: 'superseded', force: true }, /force/],
    ] as const) {
      expect(expectProblem(await revoke(cred.serial, json), 400)).toMatch(detail)
    }
    expect(await dbSnapshot(s)).toEqual(before)
    expect((await fetchCrl()).der.equals(crl.der)).toBe(true)
    expect((await show(cred.serial)).body.status).toBe('valid')
  })

  it('show: unknown serial 404; upper-case serial works; fields of the contract', async () => {
    expectProblem(await show('0123456789abcdef'), 404)
    expectProblem(await revoke('0123456789abcdef', {}), 404)
    const cred = await s.enroll('spiffe://example.org/crl/show')
    const r = await show(cred.serial.toUpperCase())
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({
      serial: cred.serial,
      spiffe_id: 'spiffe://example.org/crl/show',
      status: 'valid',
      renewed_from: null,
      revoked_at: null,
      revocation_reason: null,
    })
    expect(r.body.certificate.trim()).toBe(cred.certPem.trim())
    expect(r.body.not_before).toMatch(/Z$/)
    expect(r.body.not_after).toMatch(/Z$/)
    const up = await revoke(cred.serial.toUpperCase(), { reason: 'affiliationChanged' })
    expect(up.status).toBe(200)
    expect((await show(cred.serial)).body.status).toBe('revoked')
  })

  it('status: expired by time, revoked wins over expired; list filters by status and spiffe_id', async () => {
    const entryId = await s.createEntry('spiffe://example.org/crl/short')
    const a = await s.enroll('spiffe://example.org/crl/short', { ttl: '1s', entryId })
    const b = await s.enroll('spiffe://example.org/crl/short', { ttl: '1s', entryId })
    const c = await s.enroll('spiffe://example.org/crl/short', { ttl: '1h', entryId })
    expect((await revoke(a.serial, { reason: 'superseded' })).status).toBe(200)
    await sleep(
      Math.max(0, new Date((await show(b.serial)).body.not_after).getTime() - Date.now()) + 100,
    )
    expect((await show(a.serial)).body.status).toBe('revoked')
    expect((await show(b.serial)).body.status).toBe('expired')
    expect((await show(c.serial)).body.status).toBe('valid')

    const list = async (q: string) => {
      const r = await s.call(
        'GET',
        `/v1/certificates?spiffe_id=${encodeURIComponent('spiffe://example.org/crl/short')}${q}`,
        { as: s.admin },
      )
      expect(r.status, r.text).toBe(200)
      expect(Object.keys(r.body).sort()).toEqual(['items', 'next_cursor'])
      return r.body.items.map((i: { serial: string; status: string }) => `${i.serial}:${i.status}`)
    }
    expect(await list('')).toEqual([
      `${a.serial}:revoked`,
      `${b.serial}:expired`,
      `${c.serial}:valid`,
    ])
    expect(await list('&status=revoked')).toEqual([`${a.serial}:revoked`])
    expect(await list('&status=expired')).toEqual([`${b.serial}:expired`])
    expect(await list('&status=valid')).toEqual([`${c.serial}:valid`])

    // The expired-and-revoked certificate stays listed as revoked, never as expired.
    const other = await s.call(
      'GET',
      `/v1/certificates?spiffe_id=${encodeURIComponent('spiffe://example.org/nobody')}`,
      { as: s.admin },
    )
    expect(other.body).toEqual({ items: [], next_cursor: null })
  })

  it('cursor paging over the certificate list visits each certificate once', async () => {
    const entryId = await s.createEntry('spiffe://example.org/crl/paged')
    const serials: string[] = []
    for (let i = 0; i < 5; i++)
      serials.push((await s.enroll('spiffe://example.org/crl/paged', { entryId })).serial)
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const q: string = `spiffe_id=${encodeURIComponent('spiffe://example.org/crl/paged')}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`
      const r = await s.call('GET', `/v1/certificates?${q}`, { as: s.admin })
      expect(r.status).toBe(200)
      expect(r.body.items.length).toBeLessThanOrEqual(2)
      seen.push(...r.body.items.map((i: { serial: string }) => i.serial))
      cursor = r.body.next_cursor
      pages++
    } while (cursor !== null && pages < 20)
    expect(seen).toEqual(serials)
    expect(pages).toBe(3)
    // Unfiltered listing pages too (admin and server certificates included).
    const all = await s.call('GET', '/v1/certificates?limit=3', { as: s.admin })
    expect(all.body.items).toHaveLength(3)
    expect(typeof all.body.next_cursor).toBe('string')
  })

  it('keyCompromise revokes every certificate of that key and refuses the key from then on', async () => {
    const cred = await s.enroll('spiffe://example.org/crl/compromised')
    const renewed = await s.renew(cred, { sameKey: true })
    expect(renewed.status, renewed.text).toBe(201)
    const twin = renewed.credential!.serial
    const bystander = await s.enroll('spiffe://example.org/crl/bystander')

    const r = await revoke(cred.serial, { reason: 'keyCompromise' })
    expect(r.status, r.text).toBe(200)
    for (const serial of [cred.serial, twin]) {
      const shown = await show(serial)
      expect(shown.body.status).toBe('revoked')
      expect(shown.body.revocation_reason).toBe('keyCompromise')
    }
    expect((await show(bystander.serial)).body.status).toBe('valid')
    const crl = await fetchCrl()
    expect(crl.revoked.get(cred.serial)).toBe('Key Compromise')
    expect(crl.revoked.get(twin)).toBe('Key Compromise')
    expect(crl.revoked.has(bystander.serial)).toBe(false)

    const events = await s.store.audit.list({ action: 'certificate.revoke' })
    expect(events.filter((e) => e.subject === twin)[0]?.details).toMatchObject({
      reason: 'keyCompromise',
      cascaded_from: cred.serial,
    })
    expect(
      await s.store.audit.list({ subject: cred.serial, action: 'key.compromised' }),
    ).toHaveLength(1)

    // The key is refused for any identity, and the refusal spends no join token.
    const entryId = await s.createEntry('spiffe://example.org/crl/reuses-key')
    const token = await s.joinToken(entryId)
    const before = await dbSnapshot(s)
    const csr = makeCsr({
      keyPem: cred.keyPem,
      san: 'URI:spiffe://example.org/crl/reuses-key',
    }).csrPem
    expect(expectProblem(await enrollWith(s, token, { csr }), 400)).toMatch(/keyCompromise/)
    expect(await dbSnapshot(s)).toEqual(before)
    expect((await enrollWith(s, token, { csr: makeCsr().csrPem })).status).toBe(201)
    // Nor can a still-valid certificate renew onto the compromised key.
    const sneaky = await s.call('POST', '/v1/renew', {
      as: bystander,
      json: { csr: makeCsr({ keyPem: cred.keyPem }).csrPem },
    })
    expectProblem(sneaky, 400)
  })

  it('keyCompromise reaches descendants of an earlier certificate of the key that was already revoked', async () => {
    // A (key K) renewed into B (K'); B, once in use, renewed — by whoever holds K — back onto K
    // as A2 (the lineage rules allow one next generation at a time, so A2 comes after B).
    const a = await s.enroll('spiffe://example.org/crl/old-branch')
    const b = (await s.renew(a)).credential!
    const used = await s.call('POST', '/oauth/token', {
      as: b,
      form: { grant_type: 'client_credentials' },
    })
    expect(used.status, used.text).toBe(200) // B's first use: current, A retired
    const onK = await s.call('POST', '/v1/renew', {
      as: b,
      json: { csr: makeCsr({ keyPem: a.keyPem }).csrPem },
    })
    expect(onK.status, onK.text).toBe(201)
    const a2 = { serial: onK.body.serial as string }
    expect((await revoke(a.serial, { reason: 'superseded' })).status).toBe(200)
    // Only A2 is a valid certificate of K now; B descends from A, not from A2.
    expect((await revoke(a2.serial, { reason: 'keyCompromise' })).status).toBe(200)
    const shown = await show(b.serial)
    expect([shown.body.status, shown.body.revocation_reason]).toEqual(['revoked', 'keyCompromise'])
    expect((await show(a.serial)).body.revocation_reason).toBe('superseded')
    expect((await fetchCrl()).revoked.get(b.serial)).toBe('Key Compromise')
    const t = await s.call('POST', '/oauth/token', {
      as: b,
      form: { grant_type: 'client_credentials' },
    })
    expect(t.status).toBe(401)
  })
})

describe('the CRL never goes stale', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start({ crl: { validity: '4s' } })
  })
  afterAll(() => s.close())

  it('is rebuilt (new number, later nextUpdate) once half of its validity has passed, without a revocation', async () => {
    const get = async () => {
      const r = await request(`${s.url}/v1/crl`, { dispatcher: s.agent() })
      const der = Buffer.from(await r.body.arrayBuffer())
      const f = tempFiles({ 'crl.der': der })
      const t = openssl([
        'crl',
        '-inform',
        'DER',
        '-in',
        f['crl.der']!,
        '-noout',
        '-crlnumber',
        '-nextupdate',
      ])
      const number = /crlNumber=(0x[0-9A-Fa-f]+|[0-9]+)/.exec(t.out)
      expect(number, t.out).not.toBeNull()
      return {
        der,
        number: BigInt(number![1]!),
        next: new Date(/nextUpdate=(.+)/.exec(t.out)![1]!).getTime(),
      }
    }
    // (No identical-bytes check here: the 2s rebuild timer may tick between two reads.)
    const a = await get()
    await sleep(2100)
    const b = await get()
    expect(b.number).toBeGreaterThan(a.number)
    expect(b.next).toBeGreaterThan(a.next)
    expect(b.next).toBeGreaterThan(Date.now())
  })
})
