import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { grant, refresh, revoke } from '../helpers/tokens.js'

/** Every text or blob value in every column of every table, as text. */
describe('secrets are never stored in clear (LIFECYCLE invariant 8)', () => {
  let s: TestServer
  const logLines: string[] = []
  beforeAll(async () => {
    // Every log line at the most verbose level, captured.
    s = await TestServer.start(
      {},
      { logger: pino({ level: 'trace' }, { write: (line: string) => void logLines.push(line) }) },
    )
  })
  afterAll(() => s.close())

  it('no refresh token or join token appears in any column, the audit details, the raw database files or the logs', async () => {
    const spiffeId = 'spiffe://example.org/secrets/w'
    const entryId = await s.createEntry(spiffeId)
    const joinToken = await s.joinToken(entryId)
    const { csrPem, keyPem } = makeCsr({ san: `URI:${spiffeId}` })
    const enrolled = await s.call('POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${joinToken}` },
      json: { csr: csrPem },
    })
    expect(enrolled.status, enrolled.text).toBe(201)
    const cred = { certPem: enrolled.body.certificate, keyPem }
    // Exercise every path that stores or audits a refresh token: issue, refresh, reuse, refusal, revoke.
    const t1 = await grant(s, cred)
    const t2 = (await refresh(s, cred, t1.refresh_token)).body
    expect((await refresh(s, cred, t1.refresh_token)).status).toBe(400) // reuse: audit + family revoked
    const t3 = await grant(s, cred)
    expect((await revoke(s, cred, t3.refresh_token)).status).toBe(200)
    const t4 = await grant(s, cred)
    expect((await refresh(s, undefined, t4.refresh_token)).status).toBe(401)
    const unused = await s.joinToken(entryId) // a join token that is never redeemed
    const secrets = [
      joinToken,
      unused,
      t1.refresh_token,
      t2.refresh_token,
      t3.refresh_token,
      t4.refresh_token,
    ]

    const values = await s.storedValues()
    expect(values.length).toBeGreaterThan(50)
    for (const secret of secrets) {
      // The 16-character lookup prefix is stored by design; the whole secret, or its secret part, never.
      const secretPart = secret.slice(16)
      for (const v of values) {
        expect(v.includes(secret)).toBe(false)
        expect(v.includes(secretPart)).toBe(false)
      }
    }
    const audit = await s.store.audit.list({ limit: 10_000 })
    expect(audit.length).toBeGreaterThan(5)
    const auditText = JSON.stringify(audit)
    for (const secret of secrets) expect(auditText.includes(secret.slice(16))).toBe(false)

    // Raw bytes of the database, its WAL and anything else in data_dir, free pages included.
    for (const f of readdirSync(s.dataDir, { recursive: true, withFileTypes: true })) {
      if (!f.isFile()) continue
      const bytes = readFileSync(join(f.parentPath, f.name)).toString('latin1')
      for (const secret of secrets)
        expect(bytes.includes(secret.slice(16)), `${f.name} holds a secret`).toBe(false)
    }
    expect(logLines.length).toBeGreaterThan(10)
    const logs = logLines.join('')
    for (const secret of secrets) expect(logs.includes(secret.slice(16))).toBe(false)
  })
})
