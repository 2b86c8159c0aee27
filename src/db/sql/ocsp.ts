import type { SqlDriver } from '../driver.js'
import type { OcspStore } from '../port.js'
import type { AuditInput, OcspLookup, OcspSignerRecord, StoredOcspResponse } from '../types.js'
import { writeAudit } from './audit.js'

interface LookupRow {
  status: 'valid' | 'revoked' | null
  revoked_at: number | null
  revocation_reason: string | null
  not_after: number | null
  r_status: 'good' | 'revoked' | null
  r_revoked_at: number | null
  this_update: number | null
  next_update: number | null
  der: Uint8Array | null
}

/** OCSP responders and pre-signed responses, shared by every process and replica. */
export class SqlOcspStore implements OcspStore {
  constructor(private readonly db: SqlDriver) {}

  async lookup(issuerKeyId: string, serial: string): Promise<OcspLookup> {
    // One statement: the response is judged against the certificate as it is in the same
    // snapshot, so a revocation committed before this read is never answered as good.
    // A root's certificates are the issuing CAs it signed.
    const row = await this.db.get<LookupRow>(
      `SELECT COALESCE(c.status, CASE WHEN i.revoked_at IS NOT NULL THEN 'revoked'
                WHEN i.serial IS NOT NULL THEN 'valid' END) AS status,
              COALESCE(c.revoked_at, i.revoked_at) AS revoked_at,
              COALESCE(c.revocation_reason, i.revocation_reason) AS revocation_reason,
              COALESCE(c.not_after, i.not_after) AS not_after,
              r.status AS r_status, r.revoked_at AS r_revoked_at, r.this_update, r.next_update, r.der
       FROM (SELECT 1 AS one) k
       LEFT JOIN certificates c ON c.serial = ? AND c.issuer_key_id = ?
       LEFT JOIN issuing_cas i ON i.serial = ? AND i.parent_key_id = ?
       LEFT JOIN ocsp_responses r ON r.serial = ? AND r.issuer_key_id = ?`,
      [serial, issuerKeyId, serial, issuerKeyId, serial, issuerKeyId],
    )
    return {
      certificate:
        row?.status == null
          ? undefined
          : {
              status: row.status,
              revokedAt: row.revoked_at,
              revocationReason: row.revocation_reason,
              notAfter: row.not_after!,
            },
      response:
        row?.r_status == null
          ? undefined
          : {
              issuerKeyId,
              serial,
              status: row.r_status,
              revokedAt: row.r_revoked_at,
              thisUpdate: row.this_update!,
              nextUpdate: row.next_update!,
              der: new Uint8Array(row.der!),
            },
    }
  }

  async saveResponse(r: StoredOcspResponse): Promise<void> {
    await this.db.transaction((tx) =>
      tx.run(
        `INSERT INTO ocsp_responses (issuer_key_id, serial, status, revoked_at, this_update, next_update, der)
         VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (issuer_key_id, serial) DO UPDATE SET status = excluded.status,
           revoked_at = excluded.revoked_at, this_update = excluded.this_update,
           next_update = excluded.next_update, der = excluded.der`,
        [r.issuerKeyId, r.serial, r.status, r.revokedAt, r.thisUpdate, r.nextUpdate, r.der],
      ),
    )
  }

  async signers(issuerKeyId: string, now: number): Promise<OcspSignerRecord[]> {
    const rows = await this.db.all<{
      serial: string
      issuer_key_id: string
      der: Uint8Array
      key_sealed: Uint8Array
      not_before: number
      not_after: number
      created_at: number
    }>(
      `SELECT * FROM ocsp_signers WHERE issuer_key_id = ? AND not_after > ?
       ORDER BY not_after DESC, serial`,
      [issuerKeyId, now],
    )
    return rows.map((r) => ({
      serial: r.serial,
      issuerKeyId: r.issuer_key_id,
      der: new Uint8Array(r.der),
      keySealed: new Uint8Array(r.key_sealed),
      notBefore: r.not_before,
      notAfter: r.not_after,
      createdAt: r.created_at,
    }))
  }

  async addSigner(s: OcspSignerRecord, event: AuditInput): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO ocsp_signers (serial, issuer_key_id, der, key_sealed, not_before, not_after, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
        [s.serial, s.issuerKeyId, s.der, s.keySealed, s.notBefore, s.notAfter, s.createdAt],
      )
      // Expired responders are of no use to anyone.
      await tx.run('DELETE FROM ocsp_signers WHERE issuer_key_id = ? AND not_after <= ?', [
        s.issuerKeyId,
        s.createdAt,
      ])
      await writeAudit(tx, s.createdAt, event)
    })
  }
}
