import type { SqlDriver } from '../driver.js'
import type { ServerCredentialStore } from '../port.js'
import type { AuditInput, NewCertificate, ServerCredentialRecord } from '../types.js'
import { writeAudit } from './audit.js'
import { insertCertificate } from './issuance.js'

interface Row {
  hostnames: string
  serial: string
  chain_pem: string
  key_sealed: Uint8Array
  not_after: number
  created_at: number
}

/** The server's own TLS certificate and key, shared by every process and replica. */
export class SqlServerCredentialStore implements ServerCredentialStore {
  constructor(private readonly db: SqlDriver) {}

  async current(hostnames: string): Promise<ServerCredentialRecord | undefined> {
    const r = await this.db.get<Row>(
      'SELECT * FROM server_credentials WHERE hostnames = ? ORDER BY id DESC LIMIT 1',
      [hostnames],
    )
    return (
      r && {
        hostnames: r.hostnames,
        serial: r.serial,
        chainPem: r.chain_pem,
        keySealed: new Uint8Array(r.key_sealed),
        notAfter: r.not_after,
        createdAt: r.created_at,
      }
    )
  }

  replace(
    credential: ServerCredentialRecord,
    certificate: NewCertificate,
    expectedSerial: string | null,
    event: AuditInput,
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.get(`SELECT name FROM locks WHERE name = 'server_credentials'${this.db.forUpdate}`)
      const current = await tx.get<{ serial: string }>(
        'SELECT serial FROM server_credentials WHERE hostnames = ? ORDER BY id DESC LIMIT 1',
        [credential.hostnames],
      )
      if ((current?.serial ?? null) !== expectedSerial) return false
      await insertCertificate(tx, certificate)
      await tx.run(
        `INSERT INTO server_credentials (hostnames, serial, chain_pem, key_sealed, not_after, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
        [
          credential.hostnames,
          credential.serial,
          credential.chainPem,
          credential.keySealed,
          credential.notAfter,
          credential.createdAt,
        ],
      )
      await tx.run('DELETE FROM server_credentials WHERE hostnames = ? AND serial != ?', [
        credential.hostnames,
        credential.serial,
      ])
      await writeAudit(tx, credential.createdAt, event)
      return true
    })
  }
}
