import type { SqlDriver, SqlExecutor } from '../driver.js'
import type { IssuingCaStore } from '../port.js'
import type { AuditInput, IssuingCaRecord, PendingIssuer } from '../types.js'
import { writeAudit } from './audit.js'

interface Row {
  key_id: string
  kind: 'root' | 'intermediate'
  serial: string
  der: Uint8Array
  parent_key_id: string | null
  key_file: string | null
  key_sealed: Uint8Array | null
  not_before: number
  not_after: number
  activated_at: number | null
  revoked_at: number | null
  revocation_reason: string | null
  created_at: number
}

function toRecord(r: Row): IssuingCaRecord {
  return {
    keyId: r.key_id,
    kind: r.kind,
    serial: r.serial,
    der: new Uint8Array(r.der),
    parentKeyId: r.parent_key_id,
    keyFile: r.key_file,
    keySealed: r.key_sealed === null ? null : new Uint8Array(r.key_sealed),
    notBefore: r.not_before,
    notAfter: r.not_after,
    activatedAt: r.activated_at,
    revokedAt: r.revoked_at,
    revocationReason: r.revocation_reason,
    createdAt: r.created_at,
  }
}

const CURRENT = `SELECT key_id FROM issuing_cas WHERE kind = 'intermediate' AND activated_at IS NOT NULL
  ORDER BY activated_at DESC, key_id DESC LIMIT 1`

/** Inserts a CA row once by key id, with its audit event; false when the key id is known. */
async function insertCa(tx: SqlExecutor, ca: IssuingCaRecord, event: AuditInput): Promise<boolean> {
  const added = await tx.run(
    `INSERT INTO issuing_cas (key_id, kind, serial, der, parent_key_id, key_file, key_sealed,
       not_before, not_after, activated_at, revoked_at, revocation_reason, created_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key_id) DO NOTHING`,
    [
      ca.keyId,
      ca.kind,
      ca.serial,
      ca.der,
      ca.parentKeyId,
      ca.keyFile,
      ca.keySealed,
      ca.notBefore,
      ca.notAfter,
      ca.activatedAt,
      ca.revokedAt,
      ca.revocationReason,
      ca.createdAt,
    ],
  )
  if (added !== 1) return false
  await tx.run('DELETE FROM pending_issuers WHERE key_id = ?', [ca.keyId])
  await writeAudit(tx, ca.createdAt, event)
  return true
}

/** The CA certificates of this CA, shared by every process and replica. */
export class SqlIssuingCaStore implements IssuingCaStore {
  constructor(private readonly db: SqlDriver) {}

  async list(): Promise<IssuingCaRecord[]> {
    const rows = await this.db.all<Row>('SELECT * FROM issuing_cas ORDER BY created_at, key_id')
    return rows.map(toRecord)
  }

  add(ca: IssuingCaRecord, expectedCurrent: string | null, event: AuditInput): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.get(`SELECT name FROM locks WHERE name = 'issuing_cas'${this.db.forUpdate}`)
      if (ca.activatedAt !== null) {
        const current = await tx.get<{ key_id: string }>(CURRENT)
        if ((current?.key_id ?? null) !== expectedCurrent) return false
      }
      return insertCa(tx, ca, event)
    })
  }

  recordInitial(cas: readonly { ca: IssuingCaRecord; event: AuditInput }[]): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // Under the same lock as `add`: of racing processes the first records, the rest see it.
      await tx.get(`SELECT name FROM locks WHERE name = 'issuing_cas'${this.db.forUpdate}`)
      if (await tx.get(CURRENT)) return false
      let added = false
      for (const { ca, event } of cas) added = (await insertCa(tx, ca, event)) || added
      return added
    })
  }

  attributeUnassigned(keyId: string): Promise<number> {
    return this.db.transaction((tx) =>
      tx.run('UPDATE certificates SET issuer_key_id = ? WHERE issuer_key_id IS NULL', [keyId]),
    )
  }

  async savePending(p: PendingIssuer, event: AuditInput): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run(
        'INSERT INTO pending_issuers (key_id, key_sealed, csr, created_at) VALUES (?, ?, ?, ?)',
        [p.keyId, p.keySealed, p.csr, p.createdAt],
      )
      await writeAudit(tx, p.createdAt, event)
    })
  }

  async pending(keyId: string): Promise<PendingIssuer | undefined> {
    const r = await this.db.get<{
      key_id: string
      key_sealed: Uint8Array
      csr: Uint8Array
      created_at: number
    }>('SELECT * FROM pending_issuers WHERE key_id = ?', [keyId])
    return (
      r && {
        keyId: r.key_id,
        keySealed: new Uint8Array(r.key_sealed),
        csr: new Uint8Array(r.csr),
        createdAt: r.created_at,
      }
    )
  }
}
