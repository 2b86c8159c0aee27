import type { SqlDriver, SqlExecutor } from '../driver.js'
import type { CertificateStore } from '../port.js'
import type {
  AuditInput,
  CaCertificateRecord,
  CertificateQuery,
  CertificateRecord,
  CommitRefusalReason,
  EnrollmentCredential,
  NewCertificate,
  Page,
  RevocationResult,
} from '../types.js'
import { writeAudit } from './audit.js'
import { revokeCertificates } from './revocation.js'
import { decodeCursor, encodeCursor, toCertificate, type CertificateRow } from './rows.js'

export async function insertCertificate(tx: SqlExecutor, c: NewCertificate): Promise<void> {
  await tx.run(
    `INSERT INTO certificates (serial, kind, spiffe_id, entry_id, thumbprint, spki_sha256,
       not_before, not_after, renewed_from, der, issued_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
    ],
  )
}

export class SqlCertificateStore implements CertificateStore {
  constructor(private readonly db: SqlDriver) {}

  async get(serial: string): Promise<CertificateRecord | undefined> {
    const row = await this.db.get<CertificateRow>('SELECT * FROM certificates WHERE serial = ?', [
      serial.toLowerCase(),
    ])
    return row ? toCertificate(row) : undefined
  }

  async list(q: CertificateQuery): Promise<Page<CertificateRecord>> {
    const [after] = decodeCursor<[number]>(q.cursor, ['number']) ?? [0]
    const where = ['id > ?']
    const params: (string | number)[] = [after]
    if (q.spiffeId !== undefined) {
      where.push('spiffe_id = ?')
      params.push(q.spiffeId)
    }
    if (q.status === 'revoked') where.push(`status = 'revoked'`)
    else if (q.status === 'valid') {
      where.push(`status = 'valid' AND not_after > ?`)
      params.push(q.now)
    } else if (q.status === 'expired') {
      where.push(`status = 'valid' AND not_after <= ?`)
      params.push(q.now)
    }
    const rows = await this.db.all<CertificateRow>(
      `SELECT * FROM certificates WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`,
      [...params, q.limit + 1],
    )
    const page = rows.slice(0, q.limit)
    return {
      items: page.map(toCertificate),
      nextCursor: rows.length > q.limit ? encodeCursor([page.at(-1)!.id]) : null,
    }
  }

  async isKeyCompromised(spkiSha256: string): Promise<boolean> {
    return (await keyCompromised(this.db, spkiSha256)) === true
  }

  async insert(c: NewCertificate, event: AuditInput): Promise<void> {
    await this.db.transaction(async (tx) => {
      await insertCertificate(tx, c)
      await writeAudit(tx, c.issuedAt, event)
    })
  }

  commitEnrollment(
    credential: EnrollmentCredential,
    c: NewCertificate,
    event: AuditInput,
    now: number,
  ): Promise<CommitRefusalReason | undefined> {
    return this.db.transaction(async (tx) => {
      if (!(await this.#entryEnabled(tx, c.entryId))) return 'entry_disabled'
      if (await keyCompromised(tx, c.spkiSha256)) return 'key_compromised'
      const refusal = await spendCredential(tx, credential, c.serial, now)
      if (refusal) return refusal
      await insertCertificate(tx, c)
      await writeAudit(tx, c.issuedAt, event)
      return undefined
    })
  }

  commitRenewal(
    c: NewCertificate,
    event: AuditInput,
    now: number,
  ): Promise<CommitRefusalReason | undefined> {
    return this.db.transaction(async (tx) => {
      // Re-checked at commit: the parent may have been revoked while the new one was signed.
      const parent = await tx.get(
        `SELECT 1 AS ok FROM certificates WHERE serial = ? AND status = 'valid' AND not_after > ?${this.db.forShare}`,
        [c.renewedFrom, now],
      )
      if (!parent) return 'parent_not_valid'
      if (!(await this.#entryEnabled(tx, c.entryId))) return 'entry_disabled'
      if (await keyCompromised(tx, c.spkiSha256)) return 'key_compromised'
      await insertCertificate(tx, c)
      await writeAudit(tx, c.issuedAt, event)
      return undefined
    })
  }

  async #entryEnabled(tx: SqlExecutor, entryId: string | null): Promise<boolean> {
    if (entryId === null) return true
    const row = await tx.get<{ enabled: number }>(
      `SELECT enabled FROM entries WHERE id = ?${this.db.forShare}`,
      [entryId],
    )
    return row?.enabled === 1
  }

  revoke(
    serial: string,
    reason: string,
    now: number,
    actor: string,
  ): Promise<RevocationResult | undefined> {
    return this.db.transaction((tx) =>
      revokeCertificates(tx, this.db, serial.toLowerCase(), reason, now, actor),
    )
  }

  async isSelfOrDescendant(serial: string, ancestor: string): Promise<boolean> {
    const row = await this.db.get(
      `WITH RECURSIVE up(serial, parent, depth) AS (
         SELECT serial, renewed_from, 0 FROM certificates WHERE serial = ?
         UNION ALL
         SELECT c.serial, c.renewed_from, up.depth + 1 FROM certificates c JOIN up ON c.serial = up.parent
         WHERE up.depth < 10000)
       SELECT 1 AS found FROM up WHERE serial = ? LIMIT 1`,
      [serial, ancestor],
    )
    return row !== undefined
  }

  saveCaCertificate(c: CaCertificateRecord, now: number, event: AuditInput): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const added = await tx.run(
        `INSERT INTO ca_certificates (kind, serial, der, key_file, not_before, not_after, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (serial) DO NOTHING`,
        [c.kind, c.serial, c.der, c.keyFile, c.notBefore, c.notAfter, now],
      )
      if (added) await writeAudit(tx, now, event)
      return added === 1
    })
  }

  async caCertificates(): Promise<CaCertificateRecord[]> {
    const rows = await this.db.all<{
      kind: 'root' | 'intermediate'
      serial: string
      der: Uint8Array
      key_file: string
      not_before: number
      not_after: number
    }>('SELECT kind, serial, der, key_file, not_before, not_after FROM ca_certificates ORDER BY id')
    return rows.map((r) => ({
      kind: r.kind,
      serial: r.serial,
      der: new Uint8Array(r.der),
      keyFile: r.key_file,
      notBefore: r.not_before,
      notAfter: r.not_after,
    }))
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

export async function keyCompromised(
  db: Pick<SqlExecutor, 'get'>,
  spkiSha256: string,
): Promise<boolean> {
  const row = await db.get('SELECT 1 AS found FROM compromised_keys WHERE spki_sha256 = ?', [
    spkiSha256,
  ])
  return row !== undefined
}
