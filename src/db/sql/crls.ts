import type { SqlDriver } from '../driver.js'
import type { CrlStore } from '../port.js'
import type { CrlSnapshot, StoredCrl } from '../types.js'

interface CrlRow {
  issuer_key_id: string
  crl_number: number
  revision: number
  this_update: number
  next_update: number
  der: Uint8Array
}

/** Signed CRLs, stored so that every process and replica serves the same one. */
export class SqlCrlStore implements CrlStore {
  constructor(private readonly db: SqlDriver) {}

  snapshot(listedUntil: number, issuerKeyId?: string): Promise<CrlSnapshot> {
    return this.db.transaction(async (tx) => {
      const state = await tx.get<{ crl_number: number; revision: number }>(
        'UPDATE crl_state SET crl_number = crl_number + 1 WHERE id = 1 RETURNING crl_number, revision',
      )
      // RFC 5280 §3.3: certificates past their notAfter may leave the CRL. A CA's CRL lists the
      // certificates and the CAs it signed.
      const issuer = issuerKeyId === undefined ? '' : ' AND issuer_key_id = ?'
      const parent = issuerKeyId === undefined ? '' : ' AND parent_key_id = ?'
      const by = issuerKeyId === undefined ? [] : [issuerKeyId]
      const revoked = await tx.all<{
        serial: string
        revoked_at: number
        revocation_reason: string
      }>(
        `SELECT serial, revoked_at, revocation_reason FROM certificates
         WHERE status = 'revoked' AND not_after > ?${issuer}
         UNION ALL
         SELECT serial, revoked_at, revocation_reason FROM issuing_cas
         WHERE revoked_at IS NOT NULL AND not_after > ?${parent}
         ORDER BY revoked_at, serial`,
        [listedUntil, ...by, listedUntil, ...by],
      )
      return {
        crlNumber: BigInt(state!.crl_number),
        revision: state!.revision,
        revoked: revoked.map((r) => ({
          serial: r.serial,
          revokedAt: r.revoked_at,
          reason: r.revocation_reason,
        })),
      }
    })
  }

  async save(crl: StoredCrl): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO crls (issuer_key_id, crl_number, revision, this_update, next_update, der)
         VALUES (?, ?, ?, ?, ?, ?)`,
        [
          crl.issuerKeyId,
          Number(crl.crlNumber),
          crl.revision,
          crl.thisUpdate,
          crl.nextUpdate,
          crl.der,
        ],
      )
      // Only the newest few are kept: the current one is the one with the highest number.
      await tx.run(`DELETE FROM crls WHERE issuer_key_id = ? AND crl_number < ?`, [
        crl.issuerKeyId,
        Number(crl.crlNumber) - 8,
      ])
    })
  }

  async current(issuerKeyId: string): Promise<{ crl: StoredCrl | undefined; revision: number }> {
    const [row, state] = await Promise.all([
      this.db.get<CrlRow>(
        'SELECT * FROM crls WHERE issuer_key_id = ? ORDER BY crl_number DESC LIMIT 1',
        [issuerKeyId],
      ),
      this.db.get<{ revision: number }>('SELECT revision FROM crl_state WHERE id = 1'),
    ])
    return {
      revision: state!.revision,
      crl: row && {
        issuerKeyId: row.issuer_key_id,
        crlNumber: BigInt(row.crl_number),
        revision: row.revision,
        thisUpdate: row.this_update,
        nextUpdate: row.next_update,
        der: new Uint8Array(row.der),
      },
    }
  }
}
