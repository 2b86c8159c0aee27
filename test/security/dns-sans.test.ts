import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { dbSnapshot, enrollWith, expectProblem, x509Text } from '../helpers/ca.js'

/** DNS SANs (CONTRACT "Certificate profile additions"): de-duplicated, at most max_dns_names. */
describe('DNS SANs from the CSR', () => {
  let s: TestServer
  let n = 0
  beforeAll(async () => {
    s = await TestServer.start({ certificates: { max_dns_names: 3 } })
  })
  afterAll(() => s.close())

  const names = (k: number) => Array.from({ length: k }, (_, i) => `n${i}.example.org`)
  async function entryWith(dnsNames: string[]) {
    const spiffeId = `spiffe://example.org/dns/${++n}`
    const entryId = await s.createEntry(spiffeId, { dns_names: dnsNames })
    return { spiffeId, token: await s.joinToken(entryId) }
  }

  it('one allowed name 500 times, in any case, is issued once', async () => {
    const { spiffeId, token } = await entryWith(['web.example.org'])
    const san = [
      `URI:${spiffeId}`,
      'DNS:WEB.example.org',
      ...Array(500).fill('DNS:web.example.org'),
    ]
    const r = await enrollWith(s, token, { csr: makeCsr({ san: san.join(',') }).csrPem })
    expect(r.status, r.text).toBe(201)
    const text = x509Text(r.body.certificate)
    expect(text.match(/DNS:/g)).toHaveLength(1)
    expect(text).toContain('DNS:web.example.org')
    expect(r.body.certificate.length).toBeLessThan(1500)
  })

  it('more distinct names than certificates.max_dns_names is a 400 that spends nothing', async () => {
    const { spiffeId, token } = await entryWith(names(4))
    const before = await dbSnapshot(s)
    const four = [`URI:${spiffeId}`, ...names(4).map((d) => `DNS:${d}`)].join(',')
    const r = await enrollWith(s, token, { csr: makeCsr({ san: four }).csrPem })
    expect(expectProblem(r, 400)).toMatch(/4 distinct DNS names; at most 3.*max_dns_names/)
    expect(await dbSnapshot(s)).toEqual(before)
    // Exactly the cap, with duplicates on top, is fine: the same token still enrols.
    const three = [`URI:${spiffeId}`, ...names(3).map((d) => `DNS:${d}`), `DNS:N0.EXAMPLE.ORG`]
    const ok = await enrollWith(s, token, { csr: makeCsr({ san: three.join(',') }).csrPem })
    expect(ok.status, ok.text).toBe(201)
    expect(x509Text(ok.body.certificate).match(/DNS:/g)).toHaveLength(3)
  })

  it('renewal applies the same cap', async () => {
    const { spiffeId, token } = await entryWith(names(4))
    const { csrPem, keyPem } = makeCsr({ san: `URI:${spiffeId}` })
    const first = await enrollWith(s, token, { csr: csrPem })
    expect(first.status, first.text).toBe(201)
    const cred = { certPem: first.body.chain, keyPem }
    const four = [`URI:${spiffeId}`, ...names(4).map((d) => `DNS:${d}`)].join(',')
    const r = await s.call('POST', '/v1/renew', {
      as: cred,
      json: { csr: makeCsr({ san: four }).csrPem },
    })
    expect(expectProblem(r, 400)).toMatch(/at most 3/)
  })
})
