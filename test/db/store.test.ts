import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createSqlStore } from '../../src/db/sql/store.js'
import { openSqlite } from '../../src/db/sqlite/open.js'
import { openStore, type Store } from '../../src/db/store.js'
import type { NewCertificate } from '../../src/db/types.js'

/**
 * Repository tests on a real SQLite file (WAL). Certificates here are rows, not real
 * DER: the repositories store bytes and never parse them.
 */
describe('repositories: the preconditions are re-checked inside the commit', () => {
  let dir: string
  let a: Store
  let b: Store
  const NOW = Date.now()

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'certbound-store-'))
    // Two connections to one file, as two processes (or replicas) would have.
    a = await openStore(dir)
    b = await openStore(dir)
  })
  afterEach(async () => {
    await a.close()
    await b.close()
    rmSync(dir, { recursive: true, force: true })
  })

  let seq = 0
  function cert(entryId: string | null, extra: Partial<NewCertificate> = {}): NewCertificate {
    const serial = `4${(++seq).toString(16).padStart(31, '0')}`
    return {
      serial,
      kind: 'workload',
      spiffeId: 'spiffe://example.org/store',
      entryId,
      thumbprint: randomBytes(32).toString('base64url'),
      spkiSha256: randomBytes(32).toString('hex'),
      notBefore: NOW - 60_000,
      notAfter: NOW + 3_600_000,
      renewedFrom: null,
      der: new Uint8Array(randomBytes(64)),
      issuedAt: NOW,
      ...extra,
    }
  }
  const event = { actor: 'test', action: 'certificate.enroll' }

  async function entryWithToken(
    store: Store,
    expiresAt = NOW + 60_000,
  ): Promise<{ entryId: string; tokenId: string }> {
    const entryId = `e-${++seq}`
    await store.entries.create(
      {
        id: entryId,
        spiffeId: `spiffe://example.org/store/${seq}`,
        dnsNames: [],
        maxTtl: null,
        scopes: null,
        enabled: true,
        createdAt: NOW,
        updatedAt: NOW,
      },
      { actor: 'test', action: 'entry.create' },
    )
    const tokenId = `t-${seq}`
    await store.entries.createJoinToken({ id: tokenId, tokenHash: 'h', entryId, expiresAt }, NOW, {
      actor: 'test',
      action: 'join_token.create',
    })
    return { entryId, tokenId }
  }

  it('two connections that both found the token unused: exactly one enrolment commits', async () => {
    const { entryId, tokenId } = await entryWithToken(a)
    // Both "see" the token as unused before either commits (the race the conditional update closes).
    expect(await a.entries.findJoinToken(tokenId, NOW)).toBeDefined()
    expect(await b.entries.findJoinToken(tokenId, NOW)).toBeDefined()
    const first = cert(entryId)
    const second = cert(entryId)
    expect(await a.certificates.commitEnrollment(tokenId, first, event, NOW)).toBeUndefined()
    expect(await b.certificates.commitEnrollment(tokenId, second, event, NOW)).toBe(
      'join_token_spent',
    )
    expect(await b.certificates.get(first.serial)).toBeDefined()
    expect(await a.certificates.get(second.serial)).toBeUndefined()
    expect((await a.audit.list({ action: 'certificate.enroll' })).length).toBe(1)
    expect(await a.entries.findJoinToken(tokenId, NOW)).toBeUndefined()
  })

  it('an expired token, a disabled entry, a compromised key: nothing commits and the token stays unspent', async () => {
    const expired = await entryWithToken(a, NOW - 1)
    expect(
      await a.certificates.commitEnrollment(expired.tokenId, cert(expired.entryId), event, NOW),
    ).toBe('join_token_spent')

    // Expired while the certificate was being signed: the commit time counts, not the issue time.
    const racing = await entryWithToken(a, NOW + 500)
    expect(
      await a.certificates.commitEnrollment(racing.tokenId, cert(racing.entryId), event, NOW + 600),
    ).toBe('join_token_spent')

    const disabled = await entryWithToken(a)
    await b.entries.update(disabled.entryId, { enabled: false }, NOW, {
      actor: 'test',
      action: 'entry.disable',
    })
    expect(
      await a.certificates.commitEnrollment(disabled.tokenId, cert(disabled.entryId), event, NOW),
    ).toBe('entry_disabled')
    expect(await a.entries.findJoinToken(disabled.tokenId, NOW)).toBeDefined()

    const keyed = await entryWithToken(a)
    const victim = cert(keyed.entryId)
    await a.certificates.insert(victim, event)
    await b.certificates.revoke(victim.serial, 'keyCompromise', NOW, 'test')
    const again = cert(keyed.entryId, { spkiSha256: victim.spkiSha256 })
    expect(await a.certificates.commitEnrollment(keyed.tokenId, again, event, NOW)).toBe(
      'key_compromised',
    )
    expect(await a.entries.findJoinToken(keyed.tokenId, NOW)).toBeDefined()
    expect(await a.certificates.get(again.serial)).toBeUndefined()
  })

  it('renewal commits only while the parent is valid and current', async () => {
    const { entryId } = await entryWithToken(a)
    const parent = cert(entryId)
    await a.certificates.insert(parent, event)
    const child = cert(entryId, { renewedFrom: parent.serial })
    expect(
      await a.certificates.commitRenewal(
        child,
        { actor: 'test', action: 'certificate.renew' },
        NOW,
      ),
    ).toBeUndefined()
    expect(await a.certificates.isSelfOrDescendant(child.serial, parent.serial)).toBe(true)
    expect(await a.certificates.isSelfOrDescendant(parent.serial, child.serial)).toBe(false)

    await b.certificates.revoke(parent.serial, 'superseded', NOW, 'test')
    const late = cert(entryId, { renewedFrom: parent.serial })
    expect(
      await a.certificates.commitRenewal(late, { actor: 'test', action: 'certificate.renew' }, NOW),
    ).toBe('parent_not_valid')
    const ending = cert(entryId, { notAfter: NOW + 500 })
    await a.certificates.insert(ending, event)
    const renewedFromEnding = cert(entryId, { renewedFrom: ending.serial })
    expect(await a.certificates.commitRenewal(renewedFromEnding, event, NOW + 600)).toBe(
      'parent_not_valid',
    )
    const old = cert(entryId, { notAfter: NOW - 1 })
    await a.certificates.insert(old, event)
    expect(
      await a.certificates.commitRenewal(cert(entryId, { renewedFrom: old.serial }), event, NOW),
    ).toBe('parent_not_valid')
  })

  it('a change and its audit event commit together or not at all', async () => {
    const file = join(dir, 'certbound.db')
    const driver = openSqlite(file)
    const db = driver.connection // the write connection: its temp trigger fires inside writes
    const store = createSqlStore(driver)
    try {
      const { entryId, tokenId } = await entryWithToken(store)
      // The audit write fails (a real SQLite trigger on this connection): the change must roll back.
      db.exec(
        `CREATE TEMP TRIGGER audit_down BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit down'); END`,
      )
      const c = cert(entryId)
      await expect(store.certificates.commitEnrollment(tokenId, c, event, NOW)).rejects.toThrow(
        /audit down/,
      )
      expect(await store.certificates.get(c.serial)).toBeUndefined()
      expect(await store.entries.findJoinToken(tokenId, NOW)).toBeDefined()

      const valid = cert(entryId)
      db.exec('DROP TRIGGER audit_down')
      await store.certificates.insert(valid, event)
      db.exec(
        `CREATE TEMP TRIGGER audit_down BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit down'); END`,
      )
      await expect(
        store.certificates.revoke(valid.serial, 'keyCompromise', NOW, 'test'),
      ).rejects.toThrow(/audit down/)
      expect((await store.certificates.get(valid.serial))!.status).toBe('valid')
      expect(await store.certificates.isKeyCompromised(valid.spkiSha256)).toBe(false)
      await expect(
        store.entries.update(entryId, { enabled: false }, NOW, {
          actor: 't',
          action: 'entry.disable',
        }),
      ).rejects.toThrow(/audit down/)
      expect((await store.entries.get(entryId))!.enabled).toBe(true)
    } finally {
      await store.close()
    }
  })

  it('revocation is idempotent at the store: the first reason and time stay', async () => {
    const { entryId } = await entryWithToken(a)
    const c = cert(entryId)
    await a.certificates.insert(c, event)
    expect((await a.certificates.revoke(c.serial, 'superseded', NOW, 'test'))!.changed).toBe(true)
    expect(
      (await b.certificates.revoke(c.serial, 'affiliationChanged', NOW + 5000, 'test'))!.changed,
    ).toBe(false)
    const row = (await a.certificates.get(c.serial))!
    expect([row.status, row.revocationReason, row.revokedAt]).toEqual([
      'revoked',
      'superseded',
      NOW,
    ])
    expect(await a.certificates.revoke('00ff', 'superseded', NOW, 'test')).toBeUndefined()
  })

  it('CRL numbers strictly increase across connections', async () => {
    const n1 = (await a.crls.snapshot(NOW)).crlNumber
    const n2 = (await b.crls.snapshot(NOW)).crlNumber
    const n3 = (await a.crls.snapshot(NOW)).crlNumber
    expect(n2).toBeGreaterThan(n1)
    expect(n3).toBeGreaterThan(n2)
  })
})
