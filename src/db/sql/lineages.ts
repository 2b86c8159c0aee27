import type { SqlDriver } from '../driver.js'
import type { LineageStore } from '../port.js'
import type {
  CloneSignal,
  LineageRecord,
  LineageRevocation,
  LineageWithGenerations,
  PromotionResult,
} from '../types.js'
import { writeAudit } from './audit.js'
import {
  certificateRow,
  containLineage,
  lockLineage,
  promoteNext,
  revokeLineageRows,
  unchanged,
  type LineageRow,
} from './lineage-changes.js'
import { toCertificate, type CertificateRow } from './rows.js'

export function toLineage(r: LineageRow): LineageRecord {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    entryId: r.entry_id,
    status: r.status,
    currentSerial: r.current_serial,
    nextSerial: r.next_serial,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
    revokedReason: r.revoked_reason,
  }
}

export class SqlLineageStore implements LineageStore {
  constructor(private readonly db: SqlDriver) {}

  async find(id: string): Promise<LineageRecord | undefined> {
    const row = await this.db.get<LineageRow>('SELECT * FROM lineages WHERE id = ?', [id])
    return row && toLineage(row)
  }

  async get(id: string): Promise<LineageWithGenerations | undefined> {
    const row = await this.db.get<LineageRow>('SELECT * FROM lineages WHERE id = ?', [id])
    if (!row) return undefined
    const certs = await this.db.all<CertificateRow>(
      'SELECT * FROM certificates WHERE lineage_id = ? ORDER BY generation, id',
      [id],
    )
    return { ...toLineage(row), generations: certs.map(toCertificate) }
  }

  promote(serial: string, now: number, peer: string | null): Promise<PromotionResult> {
    return this.db.transaction(async (tx): Promise<PromotionResult> => {
      const lineageId = (await certificateRow(tx, serial))?.lineage_id
      if (!lineageId) return 'current'
      const lineage = await lockLineage(tx, this.db, lineageId)
      if (!lineage || lineage.status !== 'active') return 'revoked'
      if (lineage.current_serial === serial) return 'current'
      // Re-read under the lock: a renewal may have replaced it, an admin revoked it.
      const next = await tx.get<CertificateRow>(
        `SELECT * FROM certificates WHERE serial = ?${this.db.forUpdate}`,
        [serial],
      )
      if (lineage.next_serial !== serial || !next) return 'retired'
      if (next.status !== 'valid') return 'revoked'
      await promoteNext(tx, lineage, next, now, peer)
      return 'current'
    })
  }

  contain(signal: CloneSignal): Promise<LineageRevocation | undefined> {
    return this.db.transaction(async (tx) => {
      const presented = await certificateRow(tx, signal.serial)
      if (!presented?.lineage_id) return undefined
      const lineage = await lockLineage(tx, this.db, presented.lineage_id)
      if (!lineage) return undefined
      return containLineage(tx, lineage, presented, signal)
    })
  }

  revoke(
    id: string,
    reason: string,
    now: number,
    actor: string,
  ): Promise<LineageRevocation | undefined> {
    return this.db.transaction(async (tx) => {
      const lineage = await lockLineage(tx, this.db, id)
      if (!lineage) return undefined
      if (lineage.status !== 'active') return unchanged(id)
      const result = await revokeLineageRows(tx, lineage, reason, now, actor)
      await writeAudit(tx, now, {
        actor,
        action: 'lineage.revoke',
        subject: id,
        details: {
          reason,
          spiffe_id: lineage.spiffe_id,
          serials: result.serials,
          families: result.familiesRevoked,
          access_tokens: result.accessTokensRevoked,
        },
      })
      return result
    })
  }
}
