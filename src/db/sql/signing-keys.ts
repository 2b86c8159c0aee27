import type { SqlDriver } from '../driver.js'
import type { SigningKeyStore } from '../port.js'
import type { AuditInput, KeyRetirement, SigningKeyRecord } from '../types.js'
import { writeAudit } from './audit.js'

interface Row {
  kid: string
  alg: string
  public_jwk: string
  private_key_sealed: Uint8Array | null
  legacy_key_file: string | null
  created_at: number
  publish_at: number
  activate_at: number
  retire_at: number | null
  withdraw_at: number | null
}

const toRecord = (r: Row): SigningKeyRecord => ({
  kid: r.kid,
  alg: r.alg,
  publicJwk: JSON.parse(r.public_jwk) as Record<string, unknown>,
  privateKeySealed: r.private_key_sealed === null ? null : new Uint8Array(r.private_key_sealed),
  legacyKeyFile: r.legacy_key_file,
  createdAt: r.created_at,
  publishAt: r.publish_at,
  activateAt: r.activate_at,
  retireAt: r.retire_at,
  withdrawAt: r.withdraw_at,
})

const INSERT = `INSERT INTO signing_keys (kid, alg, public_jwk, private_key_sealed, created_at,
  publish_at, activate_at) VALUES (?, ?, ?, ?, ?, ?, ?)`

function insertParams(k: SigningKeyRecord) {
  return [
    k.kid,
    k.alg,
    JSON.stringify(k.publicJwk),
    k.privateKeySealed,
    k.createdAt,
    k.publishAt,
    k.activateAt,
  ]
}

/** Token-signing keys: metadata and the private keys, sealed under the key-encryption key. */
export class SqlSigningKeyStore implements SigningKeyStore {
  constructor(private readonly db: SqlDriver) {}

  async list(): Promise<SigningKeyRecord[]> {
    return (await this.db.all<Row>('SELECT * FROM signing_keys ORDER BY created_at, kid')).map(
      toRecord,
    )
  }

  rotate(
    key: SigningKeyRecord,
    retire: readonly KeyRetirement[],
    expectedNewest: string | null,
    now: number,
    event: AuditInput,
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // Decided inside the transaction: N processes that all found rotation due add one key.
      // The lock row serialises the deciders on PostgreSQL (SQLite's write lock already does).
      await tx.get(`SELECT name FROM locks WHERE name = 'signing_keys'${this.db.forUpdate}`)
      const newest = await tx.get<{ kid: string }>(
        'SELECT kid FROM signing_keys ORDER BY created_at DESC, kid DESC LIMIT 1',
      )
      if ((newest?.kid ?? null) !== expectedNewest) return false
      await tx.run(INSERT, insertParams(key))
      for (const r of retire) {
        // A retirement only ever moves earlier.
        await tx.run(
          `UPDATE signing_keys SET
             retire_at = CASE WHEN retire_at IS NULL OR retire_at > ? THEN ? ELSE retire_at END,
             withdraw_at = CASE WHEN withdraw_at IS NULL OR withdraw_at > ? THEN ? ELSE withdraw_at END
           WHERE kid = ?`,
          [r.retireAt, r.retireAt, r.withdrawAt, r.withdrawAt, r.kid],
        )
      }
      await writeAudit(tx, now, event)
      return true
    })
  }

  async sealLegacyKey(kid: string, sealed: Uint8Array): Promise<void> {
    await this.db.run(
      'UPDATE signing_keys SET private_key_sealed = ?, legacy_key_file = NULL WHERE kid = ?',
      [sealed, kid],
    )
  }

  async rotateNow(
    key: SigningKeyRecord,
    withdraw: readonly string[],
    now: number,
    event: AuditInput,
  ): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run(INSERT, insertParams(key))
      for (const kid of withdraw) {
        await tx.run('UPDATE signing_keys SET retire_at = ?, withdraw_at = ? WHERE kid = ?', [
          now,
          now,
          kid,
        ])
        await tx.run(
          'UPDATE access_tokens SET revoked_at = ? WHERE kid = ? AND revoked_at IS NULL',
          [now, kid],
        )
      }
      await writeAudit(tx, now, event)
    })
  }
}
