import { CAError } from '../../errors.js'
import type { SqlDriver, SqlExecutor } from '../driver.js'
import type {
  AuditInput,
  CommitRefusalReason,
  EnrollmentCredential,
  GenerationState,
  NewCertificate,
  RenewalContext,
} from '../types.js'
import { writeAudit } from './audit.js'
import { containLineage, lockLineage, promoteNext, supersedeNext } from './lineage-changes.js'
import type { CertificateRow } from './rows.js'

type Locks = Pick<SqlDriver, 'forUpdate' | 'forShare'>

/**
 * Inserts a certificate and claims its key's identity; resolves whether the claim is new (a
 * key_identities row inserted by this transaction), so the caller need not read it back.
 * `lastPeer` is recorded with the row itself rather than by a second statement.
 */
export async function insertCertificate(
  tx: SqlExecutor,
  c: NewCertificate,
  state: GenerationState | null = null,
  lastPeer: string | null = null,
): Promise<boolean> {
  await tx.run(
    `INSERT INTO certificates (serial, kind, spiffe_id, entry_id, thumbprint, spki_sha256,
       not_before, not_after, renewed_from, der, issued_at, issuer_key_id, lineage_id, generation,
       lineage_state, last_peer)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      c.serial,
      c.kind,
      c.spiffeId,
      c.entryId,
      c.thumbprint,
      c.spkiSha256,
      c.notBefore,
      c.notAfter,
      c.renewedFrom,
      c.der,
      c.issuedAt,
      c.issuerKeyId ?? null,
      c.lineageId ?? null,
      c.generation ?? null,
      c.lineageId ? state : null,
      lastPeer,
    ],
  )
  if (c.spiffeId === null) return false
  const claimed = await tx.run(
    `INSERT INTO key_identities (spki_sha256, spiffe_id) VALUES (?, ?)
     ON CONFLICT (spki_sha256) DO NOTHING`,
    [c.spkiSha256, c.spiffeId],
  )
  return claimed === 1
}

export async function keyCompromised(
  db: Pick<SqlExecutor, 'get'>,
  spkiSha256: string,
): Promise<boolean> {
  const row = await db.get('SELECT 1 AS found FROM compromised_keys WHERE spki_sha256 = ?', [
    spkiSha256,
  ])
  return row !== undefined
}

export async function keyIdentity(
  db: Pick<SqlExecutor, 'get'>,
  spkiSha256: string,
): Promise<string | undefined> {
  const row = await db.get<{ spiffe_id: string }>(
    'SELECT spiffe_id FROM key_identities WHERE spki_sha256 = ?',
    [spkiSha256],
  )
  return row?.spiffe_id
}

/**
 * The key checks of every issuance: not compromised, not certified for another SPIFFE ID. One
 * statement for both (this runs in every enrolment and renewal transaction).
 */
async function keyRefusal(
  tx: SqlExecutor,
  c: NewCertificate,
): Promise<CommitRefusalReason | undefined> {
  const row = await tx.get<{ compromised: number | null; holder: string | null }>(
    `SELECT (SELECT 1 FROM compromised_keys WHERE spki_sha256 = ?) AS compromised,
       (SELECT spiffe_id FROM key_identities WHERE spki_sha256 = ?) AS holder`,
    [c.spkiSha256, c.spkiSha256],
  )
  if (row?.compromised != null) return 'key_compromised'
  const holder = row?.holder ?? undefined
  if (holder !== undefined && holder !== c.spiffeId) return 'key_other_identity'
  return undefined
}

/**
 * After the insert: the key's identity is this certificate's. When this transaction's insert
 * claimed it, it is (nothing to read). Otherwise a row was there already: ours (checked by
 * keyRefusal), or one that a concurrent issuance for another SPIFFE ID on another replica
 * committed between our check and our insert; that one makes the whole transaction roll back
 * (LIFECYCLE invariant 12).
 */
async function confirmKeyIdentity(
  tx: SqlExecutor,
  c: NewCertificate,
  claimed: boolean,
): Promise<void> {
  if (claimed) return
  if ((await keyIdentity(tx, c.spkiSha256)) !== c.spiffeId)
    throw new CAError('ERR_POLICY_DENIED', 'this public key is certified for another SPIFFE ID')
}

/** The entry's state under a share lock: undefined unless it exists and is enabled. */
async function enabledEntry(
  tx: SqlExecutor,
  db: Locks,
  entryId: string,
): Promise<{ scopes: string | null } | undefined> {
  const row = await tx.get<{ enabled: number; scopes: string | null }>(
    `SELECT enabled, scopes FROM entries WHERE id = ?${db.forShare}`,
    [entryId],
  )
  return row?.enabled === 1 ? row : undefined
}

async function entryEnabled(tx: SqlExecutor, db: Locks, entryId: string | null) {
  return entryId === null || (await enabledEntry(tx, db, entryId)) !== undefined
}

/**
 * Renewal re-runs the whole issuance policy, the entry's scopes included: a token family of the
 * lineage that carries a scope the entry no longer allows ends here, rather than following the
 * lineage onto the new certificate.
 */
async function endFamiliesOutsideScopes(
  tx: SqlExecutor,
  c: NewCertificate,
  scopes: string | null,
  now: number,
  actor: string,
): Promise<void> {
  if (scopes === null) return
  const allowed = new Set(JSON.parse(scopes) as string[])
  const families = await tx.all<{ id: string; scope: string | null }>(
    `SELECT id, scope FROM token_families WHERE status = 'active'
       AND cert_serial IN (SELECT serial FROM certificates WHERE lineage_id = ?)`,
    [c.lineageId ?? null],
  )
  const outside = families.filter((f) =>
    (f.scope ?? '').split(' ').some((s) => s && !allowed.has(s)),
  )
  for (const f of outside) {
    await tx.run(
      `UPDATE token_families SET status = 'revoked', revoked_at = ?, revoked_reason = 'scope_withdrawn'
       WHERE id = ? AND status = 'active'`,
      [now, f.id],
    )
    await tx.run(
      'UPDATE access_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL AND expires_at > ?',
      [now, f.id, now],
    )
  }
  if (outside.length > 0) {
    await writeAudit(tx, now, {
      actor,
      action: 'token.family.revoke_cascade',
      subject: c.spiffeId,
      details: {
        cause: 'scope_withdrawn',
        lineage_id: c.lineageId,
        families: outside.map((f) => f.id),
      },
    })
  }
}

/**
 * The single-use guarantee (LIFECYCLE invariant 6): a conditional write that, of N racing
 * redemptions, changes a row for one. A join token's row is marked used; an OIDC token's use
 * is a new row on its hash, inserted only if there is none (every replica shares the table).
 */
async function spendCredential(
  tx: SqlExecutor,
  credential: EnrollmentCredential,
  serial: string,
  now: number,
): Promise<CommitRefusalReason | undefined> {
  if ('joinTokenId' in credential) {
    const spent = await tx.run(
      'UPDATE join_tokens SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?',
      [now, serial, credential.joinTokenId, now],
    )
    return spent === 1 ? undefined : 'join_token_spent'
  }
  const use = credential.oidcToken
  const recorded = await tx.run(
    `INSERT INTO oidc_token_uses (token_hash, issuer, used_at, used_by, expires_at)
     VALUES (?, ?, ?, ?, ?) ON CONFLICT (token_hash) DO NOTHING`,
    [use.tokenHash, use.issuer, now, serial, use.expiresAt],
  )
  return recorded === 1 ? undefined : 'oidc_token_spent'
}

/** The enrolment transaction (CertificateStore.commitEnrollment). */
export async function commitEnrollmentTx(
  tx: SqlExecutor,
  db: Locks,
  credential: EnrollmentCredential,
  c: NewCertificate,
  event: AuditInput,
  now: number,
  peer: string | null,
): Promise<CommitRefusalReason | undefined> {
  if (!(await entryEnabled(tx, db, c.entryId))) return 'entry_disabled'
  const refusal = await keyRefusal(tx, c)
  if (refusal) return refusal
  const spent = await spendCredential(tx, credential, c.serial, now)
  if (spent) return spent
  if (c.lineageId) {
    await tx.run(
      `INSERT INTO lineages (id, spiffe_id, entry_id, status, current_serial, created_at)
       VALUES (?, ?, ?, 'active', ?, ?)`,
      [c.lineageId, c.spiffeId, c.entryId, c.serial, c.issuedAt],
    )
  }
  await confirmKeyIdentity(tx, c, await insertCertificate(tx, c, 'current', peer))
  await writeAudit(tx, c.issuedAt, event)
  return undefined
}

/**
 * The renewal transaction (CertificateStore.commitRenewal). Under the lineage's lock: the
 * parent must be its current generation (a next one is promoted here: this is its first use;
 * a retired one is a clone, contained before the refusal commits), valid and inside its
 * window (or the grace of a renewal after expiry); then the new certificate becomes the next
 * generation, replacing a next one that was never used.
 */
export async function commitRenewalTx(
  tx: SqlExecutor,
  db: Locks,
  c: NewCertificate,
  event: AuditInput,
  now: number,
  context: RenewalContext,
): Promise<CommitRefusalReason | undefined> {
  const peer = context.peer ?? null
  const lineage = c.lineageId ? await lockLineage(tx, db, c.lineageId) : undefined
  if (!lineage || lineage.status !== 'active') return 'lineage_revoked'
  const parent = await tx.get<CertificateRow>(
    `SELECT * FROM certificates WHERE serial = ?${db.forShare}`,
    [c.renewedFrom],
  )
  if (!parent || parent.lineage_id !== lineage.id) return 'parent_not_valid'
  const retired =
    parent.lineage_state === 'retired' &&
    (parent.status === 'valid' || parent.revocation_reason === 'superseded')
  if (retired) {
    await containLineage(tx, lineage, parent, {
      serial: parent.serial,
      request: 'renew',
      peer,
      now,
    })
    return 'clone_suspected'
  }
  const graceMs = context.afterExpiry?.graceMs ?? 0
  if (parent.status !== 'valid' || now >= parent.not_after + graceMs) return 'parent_not_valid'
  // The entry's scopes come with the check: the one read of the entry in this transaction.
  const entry = c.entryId === null ? { scopes: null } : await enabledEntry(tx, db, c.entryId)
  if (!entry) return 'entry_disabled'
  const refusal = await keyRefusal(tx, c)
  if (refusal) return refusal
  const proof = context.afterExpiry
  if (proof) {
    // Single use until the proof's own exp; spent ones past it are forgotten here.
    await tx.run('DELETE FROM renewal_proofs WHERE expires_at <= ?', [now])
    const fresh = await tx.run(
      `INSERT INTO renewal_proofs (serial, jti, expires_at) VALUES (?, ?, ?)
       ON CONFLICT (serial, jti) DO NOTHING`,
      [parent.serial, proof.jti, proof.proofExpiresAt],
    )
    if (fresh !== 1) return 'proof_replayed'
  }
  if (lineage.next_serial === parent.serial) {
    await promoteNext(tx, lineage, parent, now, peer)
  } else if (lineage.next_serial !== null) {
    await supersedeNext(tx, lineage.next_serial, now, event.actor)
  }
  await confirmKeyIdentity(tx, c, await insertCertificate(tx, c, 'next'))
  await endFamiliesOutsideScopes(tx, c, entry.scopes, now, event.actor)
  await tx.run('UPDATE lineages SET next_serial = ? WHERE id = ?', [c.serial, lineage.id])
  // A write only when the parent's last recorded peer changes (as a token request records it).
  if (peer && peer !== parent.last_peer)
    await tx.run('UPDATE certificates SET last_peer = ? WHERE serial = ?', [peer, parent.serial])
  await writeAudit(tx, c.issuedAt, event)
  return undefined
}
