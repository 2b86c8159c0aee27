import type { SqlDriver, SqlExecutor } from '../driver.js'
import type { RevocationResult } from '../types.js'
import { writeAudit } from './audit.js'
import type { CertificateRow } from './rows.js'

/**
 * Every currently valid certificate a keyCompromise of `spki` must revoke: all certificates of
 * that key *whatever their state* — an earlier one revoked as `superseded` may still have
 * descendants, renewed by whoever held the key — and everything renewed from any of them,
 * directly or further down, whatever its own key (CONTRACT "Certificates").
 */
async function compromisedLineage(tx: SqlExecutor, spki: string): Promise<string[]> {
  const rows = await tx.all<{ serial: string }>(
    `WITH RECURSIVE down(serial) AS (
       SELECT serial FROM certificates WHERE spki_sha256 = ?
       UNION SELECT c.serial FROM certificates c JOIN down ON c.renewed_from = down.serial)
     SELECT serial FROM certificates WHERE serial IN (SELECT serial FROM down) AND status = 'valid'
     ORDER BY id`,
    [spki],
  )
  return rows.map((r) => r.serial)
}

/**
 * Ends what is bound to one revoked certificate: its token families and access tokens. The
 * access tokens first, while the families are still active: the subquery then takes the
 * partial index on active families (a family revoked before had its tokens revoked with it),
 * where without `status = 'active'` it scanned every family in the database.
 */
export async function endBoundTokens(
  tx: SqlExecutor,
  serial: string,
  now: number,
): Promise<{ families: number; accessTokens: number }> {
  const accessTokens = await tx.run(
    `UPDATE access_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND expires_at > ?
       AND (cert_serial = ? OR family_id IN
         (SELECT id FROM token_families WHERE cert_serial = ? AND status = 'active'))`,
    [now, now, serial, serial],
  )
  const families = await tx.run(
    `UPDATE token_families SET status = 'revoked', revoked_at = ?, revoked_reason = 'certificate_revoked'
     WHERE cert_serial = ? AND status = 'active'`,
    [now, serial],
  )
  return { families, accessTokens }
}

/**
 * Revokes each still-valid certificate of `serials` with what is bound to it, one audit event
 * each (`details` names why); returns the tokens it ended. The caller bumps the CRL revision.
 */
export async function revokeEach(
  tx: SqlExecutor,
  serials: readonly string[],
  reason: string,
  now: number,
  actor: string,
  details: (serial: string) => Record<string, unknown>,
): Promise<{ families: number; accessTokens: number }> {
  const total = { families: 0, accessTokens: 0 }
  for (const serial of serials) {
    await tx.run(
      `UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?
       WHERE serial = ? AND status = 'valid'`,
      [now, reason, serial],
    )
    const ended = await endBoundTokens(tx, serial, now)
    total.families += ended.families
    total.accessTokens += ended.accessTokens
    await writeAudit(tx, now, {
      actor,
      action: 'certificate.revoke',
      subject: serial,
      details: { reason, ...details(serial) },
    })
  }
  return total
}

/**
 * The revocation cascade, inside the caller's transaction: the certificate, with keyCompromise
 * its key's whole lineage (and the key refused from then on), every token bound to any of
 * them; one audit event per certificate; the CRL revision bumped so no process serves a CRL
 * without these serials (LIFECYCLE invariant 11).
 */
export async function revokeCertificates(
  tx: SqlExecutor,
  db: Pick<SqlDriver, 'forUpdate'>,
  serial: string,
  reason: string,
  now: number,
  actor: string,
): Promise<RevocationResult | undefined> {
  const row = await tx.get<CertificateRow>(
    `SELECT * FROM certificates WHERE serial = ?${db.forUpdate}`,
    [serial],
  )
  if (!row) return undefined
  const targets: string[] = row.status === 'valid' ? [row.serial] : []
  if (reason === 'keyCompromise') {
    for (const s of await compromisedLineage(tx, row.spki_sha256))
      if (!targets.includes(s)) targets.push(s)
    const added = await tx.run(
      `INSERT INTO compromised_keys (spki_sha256, serial, at) VALUES (?, ?, ?)
       ON CONFLICT (spki_sha256) DO NOTHING`,
      [row.spki_sha256, row.serial, now],
    )
    if (added)
      await writeAudit(tx, now, {
        actor,
        action: 'key.compromised',
        subject: row.serial,
        details: { spki_sha256: row.spki_sha256 },
      })
  }
  const ended = await revokeEach(tx, targets, reason, now, actor, (s) =>
    s !== row.serial ? { cascaded_from: row.serial } : {},
  )
  const familiesRevoked = ended.families
  const accessTokensRevoked = ended.accessTokens
  if (familiesRevoked || accessTokensRevoked) {
    await writeAudit(tx, now, {
      actor,
      action: 'token.family.revoke_cascade',
      subject: row.serial,
      details: {
        cause: 'certificate_revoked',
        serials: targets,
        families: familiesRevoked,
        access_tokens: accessTokensRevoked,
      },
    })
  }
  if (targets.length > 0) await bumpCrlRevision(tx)
  return { changed: targets.length > 0, serials: targets, familiesRevoked, accessTokensRevoked }
}

/** Every stored CRL is stale from this commit on: the next reader builds one with the change. */
export async function bumpCrlRevision(tx: SqlExecutor): Promise<void> {
  await tx.run('UPDATE crl_state SET revision = revision + 1 WHERE id = 1')
}
