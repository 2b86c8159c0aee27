import type { Database } from 'better-sqlite3'
import type { AuditRepository } from './audit.js'
import type { AuditInput } from './types.js'

export interface SigningKeyRecord {
  readonly kid: string
  readonly alg: string
  readonly publicJwk: Record<string, unknown>
  readonly keyFile: string
  readonly createdAt: number
  readonly publishAt: number
  readonly activateAt: number
  readonly retireAt: number | null
  readonly withdrawAt: number | null
}

interface Row {
  kid: string
  alg: string
  public_jwk: string
  key_file: string
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
  keyFile: r.key_file,
  createdAt: r.created_at,
  publishAt: r.publish_at,
  activateAt: r.activate_at,
  retireAt: r.retire_at,
  withdrawAt: r.withdraw_at,
})

/** Token-signing key metadata; the private keys are 0600 files under data_dir. */
export class SigningKeyRepository {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditRepository,
  ) {}

  #insert(key: SigningKeyRecord): void {
    this.db
      .prepare(
        `INSERT INTO signing_keys (kid, alg, public_jwk, key_file, created_at, publish_at, activate_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        key.kid,
        key.alg,
        JSON.stringify(key.publicJwk),
        key.keyFile,
        key.createdAt,
        key.publishAt,
        key.activateAt,
      )
  }

  async list(): Promise<SigningKeyRecord[]> {
    return (
      this.db.prepare('SELECT * FROM signing_keys ORDER BY created_at, kid').all() as Row[]
    ).map(toRecord)
  }

  /**
   * Adds a key and, in the same transaction, schedules the end of the keys it replaces:
   * they stop signing at `retireAt` and leave the JWKS at `withdrawAt`.
   */
  async rotate(
    key: SigningKeyRecord,
    retire: readonly { kid: string; retireAt: number; withdrawAt: number }[],
    now: number,
    event: AuditInput,
  ): Promise<void> {
    this.db.transaction(() => {
      this.#insert(key)
      const update = this.db.prepare(
        `UPDATE signing_keys SET retire_at = min(coalesce(retire_at, ?), ?), withdraw_at = min(coalesce(withdraw_at, ?), ?)
         WHERE kid = ?`,
      )
      for (const r of retire) update.run(r.retireAt, r.retireAt, r.withdrawAt, r.withdrawAt, r.kid)
      this.audit.write(now, event)
    })()
  }

  /**
   * Emergency rotation, one transaction: the new key signs at once; the old keys leave the
   * JWKS now and the tokens they signed are revoked with them.
   */
  async rotateNow(
    key: SigningKeyRecord,
    withdraw: readonly string[],
    now: number,
    event: AuditInput,
  ): Promise<void> {
    this.db.transaction(() => {
      this.#insert(key)
      const update = this.db.prepare(
        'UPDATE signing_keys SET retire_at = ?, withdraw_at = ? WHERE kid = ?',
      )
      const kill = this.db.prepare(
        'UPDATE access_tokens SET revoked_at = ? WHERE kid = ? AND revoked_at IS NULL',
      )
      for (const kid of withdraw) {
        update.run(now, now, kid)
        kill.run(now, kid)
      }
      this.audit.write(now, event)
    })()
  }
}
