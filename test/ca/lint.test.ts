import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { dbSnapshot, enrollWith, expectProblem, query } from '../helpers/ca.js'
import { TestServer } from '../helpers/server.js'

// A certificate that fails pre-issuance lint is never signed, and the refusal is audited. The
// policy refuses everything the lint checks first, so the test breaks the agreement between
// them: the entry was made for the trust domain the server no longer has.
describe('pre-issuance lint over HTTP', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  it('a leaf the lint refuses: 400, no certificate, the join token unspent, certificate.lint_refused audited', async () => {
    const id = 'spiffe://example.org/lint/victim'
    const token = await s.joinToken(await s.createEntry(id))
    const { csrPem } = makeCsr({ san: `URI:${id}` })
    const before = await dbSnapshot(s)
    ;(s.config as { trustDomain: string }).trustDomain = 'other.example'
    try {
      const r = await enrollWith(s, token, { csr: csrPem })
      expect(expectProblem(r, 400)).toMatch(
        /pre-issuance lint: URI SAN .* is not a SPIFFE ID of the trust domain/,
      )
    } finally {
      ;(s.config as { trustDomain: string }).trustDomain = 'example.org'
    }
    const after = (await dbSnapshot(s)) as { certificates: unknown; joinTokens: unknown }
    expect(after.certificates).toEqual((before as typeof after).certificates)
    expect(after.joinTokens).toEqual((before as typeof after).joinTokens)
    const audit = await query(
      s,
      "SELECT actor, subject, details FROM audit_events WHERE action = 'certificate.lint_refused'",
    )
    expect(audit).toHaveLength(1)
    expect(audit[0]).toMatchObject({ actor: 'system', subject: id })
    expect(JSON.parse(audit[0].details).violations.join()).toMatch(
      /trust domain must be "other.example"/,
    )
    // With the configuration back, the same token enrols.
    expect((await enrollWith(s, token, { csr: csrPem })).status).toBe(201)
  })
})
