import type { SqlDriver } from '../driver.js'
import type { CertificateStore } from '../port.js'
import type {
  AuditInput,
  CaCertificateRecord,
  CertificateQuery,
  CertificateRecord,
  CertificateState,
  CommitRefusalReason,
  EnrollmentCredential,
  NewCertificate,
  Page,
  RenewalContext,
  RevocationResult,
} from '../types.js'
import { writeAudit } from './audit.js'
import {
  commitEnrollmentTx,
  commitRenewalTx,
  insertCertificate,
  keyCompromised,
  keyIdentity,
} from './issuance.js'
import { revokeCertificates } from './revocation.js'
import {
  CERTIFICATE_STATE_COLUMNS,
  decodeCursor,
  encodeCursor,
  toCertificate,
  toCertificateState,
  type CertificateRow,
} from './rows.js'

export class SqlCertificateStore implements CertificateStore {
  constructor(private readonly db: SqlDriver) {}

  async get(serial: string): Promise<CertificateRecord | undefined> {
    const row = await this.db.get<CertificateRow>('SELECT * FROM certificates WHERE serial = ?', [
      serial.toLowerCase(),
    ])
    return row ? toCertificate(row) : undefined
  }

  async getState(serial: string): Promise<CertificateState | undefined> {
    const row = await this.db.get<Omit<CertificateRow, 'der'>>(
      `SELECT ${CERTIFICATE_STATE_COLUMNS} FROM certificates WHERE serial = ?`,
      [serial.toLowerCase()],
    )
    return row ? toCertificateState(row) : undefined
  }

  async list(q: CertificateQuery): Promise<Page<CertificateRecord>> {
    const [after] = decodeCursor<[number]>(q.cursor, ['number']) ?? [0]
    const where = ['id > ?']
    const params: (string | number)[] = [after]
    if (q.spiffeId !== undefined) {
      where.push('spiffe_id = ?')
      params.push(q.spiffeId)
    }
    if (q.lineageId !== undefined) {
      where.push('lineage_id = ?')
      params.push(q.lineageId)
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
    peer: string | null = null,
  ): Promise<CommitRefusalReason | undefined> {
    return this.db.transaction((tx) =>
      commitEnrollmentTx(tx, this.db, credential, c, event, now, peer),
    )
  }

  // Re-checked in the transaction (parent still current and valid, entry enabled, key not
  // compromised): a revocation or a first use of another generation while we signed must win.
  commitRenewal(
    c: NewCertificate,
    event: AuditInput,
    now: number,
    context: RenewalContext = {},
  ): Promise<CommitRefusalReason | undefined> {
    return this.db.transaction((tx) => commitRenewalTx(tx, this.db, c, event, now, context))
  }

  keyIdentity(spkiSha256: string): Promise<string | undefined> {
    return keyIdentity(this.db, spkiSha256)
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
