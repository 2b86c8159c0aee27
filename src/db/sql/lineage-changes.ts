import type { SqlDriver, SqlExecutor } from '../driver.js'
import type { CloneSignal, LineageRevocation } from '../types.js'
import { writeAudit } from './audit.js'
import { bumpCrlRevision, endBoundTokens, revokeEach } from './revocation.js'
import type { CertificateRow } from './rows.js'

/*
 * The changes of a lineage's generations, inside the caller's transaction; the caller holds
 * the lineage's row lock (lockLineage) first, so racing changes queue in one order.
 */

export interface LineageRow {
  id: string
  spiffe_id: string
  entry_id: string | null
  status: 'active' | 'revoked'
  current_serial: string | null
  next_serial: string | null
  created_at: number
  revoked_at: number | null
  revoked_reason: string | null
}

type Locks = Pick<SqlDriver, 'forUpdate' | 'forShare'>

/** The actor of what clone detection does: the server itself, on the evidence of a request. */
export const CLONE_DETECTION = 'certbound:clone-detection'

/**
 * The lineage's row, locked: every change of a lineage's generations takes this lock first
 * (then certificate rows), so racing renewals, first uses and containments queue in one order.
 */
export function lockLineage(
  tx: SqlExecutor,
  db: Locks,
  id: string,
): Promise<LineageRow | undefined> {
  return tx.get<LineageRow>(`SELECT * FROM lineages WHERE id = ?${db.forUpdate}`, [id])
}

export const certificateRow = (tx: SqlExecutor, serial: string | null) =>
  serial === null
    ? Promise.resolve(undefined)
    : tx.get<CertificateRow>('SELECT * FROM certificates WHERE serial = ?', [serial])

/** First use of the next generation (the caller holds the lineage lock): current ← next. */
export async function promoteNext(
  tx: SqlExecutor,
  lineage: LineageRow,
  next: CertificateRow,
  now: number,
  peer: string | null,
): Promise<void> {
  if (lineage.current_serial !== null) {
    await tx.run(
      `UPDATE certificates SET lineage_state = 'retired', retired_at = ?
       WHERE serial = ? AND lineage_state = 'current'`,
      [now, lineage.current_serial],
    )
  }
  await tx.run(
    `UPDATE certificates SET lineage_state = 'current', last_peer = coalesce(?, last_peer)
     WHERE serial = ?`,
    [peer, next.serial],
  )
  await tx.run('UPDATE lineages SET current_serial = ?, next_serial = NULL WHERE id = ?', [
    next.serial,
    lineage.id,
  ])
  await writeAudit(tx, now, {
    actor: next.spiffe_id ?? `serial:${next.serial}`,
    action: 'lineage.generation_current',
    subject: next.serial,
    details: {
      lineage_id: lineage.id,
      generation: next.generation,
      retired_serial: lineage.current_serial,
      peer,
    },
  })
}

/**
 * A renewal replaced a next generation that was never used (an agent that crashed before it
 * wrote its files renews again): revoked `superseded`, retired from now on.
 */
export async function supersedeNext(
  tx: SqlExecutor,
  serial: string,
  now: number,
  actor: string,
): Promise<void> {
  const row = await certificateRow(tx, serial)
  if (!row) return
  const valid = row.status === 'valid'
  await tx.run(
    `UPDATE certificates SET lineage_state = 'retired', retired_at = ?, status = 'revoked',
       revoked_at = coalesce(revoked_at, ?), revocation_reason = coalesce(revocation_reason, 'superseded')
     WHERE serial = ?`,
    [now, now, serial],
  )
  if (!valid) return
  await endBoundTokens(tx, serial, now)
  await writeAudit(tx, now, {
    actor,
    action: 'certificate.revoke',
    subject: serial,
    details: { reason: 'superseded', cause: 'replaced_by_renewal', lineage_id: row.lineage_id },
  })
  await bumpCrlRevision(tx)
}

/**
 * Revokes a lineage (the caller holds its lock): every unexpired valid certificate of it —
 * with keyCompromise also every other certificate of its keys and what was renewed from them,
 * and the keys refused from then on — every token family that follows it or is bound to one of
 * them, and their access tokens. Expired certificates are left as they are: nothing accepts them.
 */
export async function revokeLineageRows(
  tx: SqlExecutor,
  lineage: LineageRow,
  reason: string,
  now: number,
  actor: string,
): Promise<LineageRevocation> {
  const byKey = reason === 'keyCompromise'
  if (byKey) {
    await tx.run(
      `INSERT INTO compromised_keys (spki_sha256, serial, at)
       SELECT spki_sha256, min(serial), ? FROM certificates WHERE lineage_id = ? GROUP BY spki_sha256
       ON CONFLICT (spki_sha256) DO NOTHING`,
      [now, lineage.id],
    )
  }
  const sameKeys = byKey
    ? 'OR spki_sha256 IN (SELECT spki_sha256 FROM certificates WHERE lineage_id = ?)'
    : ''
  const targets = await tx.all<{ serial: string }>(
    `WITH RECURSIVE down(serial) AS (
       SELECT serial FROM certificates WHERE lineage_id = ? ${sameKeys}
       UNION SELECT c.serial FROM certificates c JOIN down ON c.renewed_from = down.serial)
     SELECT serial FROM certificates
     WHERE serial IN (SELECT serial FROM down) AND status = 'valid' AND not_after > ? ORDER BY id`,
    byKey ? [lineage.id, lineage.id, now] : [lineage.id, now],
  )
  const ended = await revokeEach(
    tx,
    targets.map((t) => t.serial),
    reason,
    now,
    actor,
    () => ({ lineage_id: lineage.id }),
  )
  let familiesRevoked = ended.families
  let accessTokensRevoked = ended.accessTokens
  // A family follows its lineage: it is bound to one of the lineage's certificates, whichever.
  const ofLineage = 'SELECT serial FROM certificates WHERE lineage_id = ?'
  // Access tokens first, while their families are active (see endBoundTokens).
  accessTokensRevoked += await tx.run(
    `UPDATE access_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND expires_at > ?
       AND (cert_serial IN (${ofLineage})
         OR family_id IN (SELECT id FROM token_families
           WHERE status = 'active' AND cert_serial IN (${ofLineage})))`,
    [now, now, lineage.id, lineage.id],
  )
  familiesRevoked += await tx.run(
    `UPDATE token_families SET status = 'revoked', revoked_at = ?, revoked_reason = 'lineage_revoked'
     WHERE status = 'active' AND cert_serial IN (${ofLineage})`,
    [now, lineage.id],
  )
  await tx.run(
    `UPDATE lineages SET status = 'revoked', revoked_at = ?, revoked_reason = ? WHERE id = ?`,
    [now, reason, lineage.id],
  )
  await bumpCrlRevision(tx)
  return {
    lineageId: lineage.id,
    changed: true,
    serials: targets.map((t) => t.serial),
    familiesRevoked,
    accessTokensRevoked,
  }
}

export const unchanged = (lineageId: string): LineageRevocation => ({
  lineageId,
  changed: false,
  serials: [],
  familiesRevoked: 0,
  accessTokensRevoked: 0,
})

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

/** One generation as the clone alarm names it: serial, place, and where it was seen from. */
function witness(r: CertificateRow | undefined, requestPeer?: string | null) {
  if (!r) return null
  const superseded = r.status === 'revoked' && r.revocation_reason === 'superseded'
  return {
    serial: r.serial,
    generation: r.generation,
    state: superseded ? 'superseded' : r.lineage_state,
    retired_at: iso(r.retired_at),
    last_peer: r.last_peer,
    ...(requestPeer !== undefined && { request_peer: requestPeer }),
  }
}

/**
 * Containment (the caller holds the lineage lock): the lineage revoked with keyCompromise and
 * its tokens, and the alarm naming both generations and the peers seen on each.
 */
export async function containLineage(
  tx: SqlExecutor,
  lineage: LineageRow,
  presented: CertificateRow,
  signal: CloneSignal,
): Promise<LineageRevocation> {
  if (lineage.status !== 'active') return unchanged(lineage.id)
  const current = await certificateRow(tx, lineage.current_serial)
  const next = await certificateRow(tx, lineage.next_serial)
  const branch = await certificateRow(tx, signal.branchSerial ?? null)
  const result = await revokeLineageRows(tx, lineage, 'keyCompromise', signal.now, CLONE_DETECTION)
  await writeAudit(tx, signal.now, {
    actor: CLONE_DETECTION,
    action: 'lineage.clone_detected',
    subject: lineage.id,
    details: {
      lineage_id: lineage.id,
      spiffe_id: lineage.spiffe_id,
      request: signal.request,
      presented: witness(presented, signal.peer),
      current: witness(current),
      next: witness(next),
      ...(branch && { branch: witness(branch) }),
      revoked_serials: result.serials,
      families: result.familiesRevoked,
      access_tokens: result.accessTokensRevoked,
    },
  })
  return result
}
