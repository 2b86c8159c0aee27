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

type Schedule = Pick<
  Row,
  'kid' | 'created_at' | 'publish_at' | 'activate_at' | 'retire_at' | 'withdraw_at'
> & { sealed: number }

/** Token-signing keys: metadata and the private keys, sealed under the key-encryption key. */
export class SqlSigningKeyStore implements SigningKeyStore {
  /**
   * What never changes for a kid once its key is sealed: the algorithm, the public JWK and the
   * sealed private key (a kid is the JWK thumbprint of its key). Every list() still reads the
   * schedule of every key from the database — a rotation or withdrawal by any process is seen
   * at once (LIFECYCLE invariant 11) — but not the blobs, nor parses the JWKs again.
   */
  readonly #fixed = new Map<string, SigningKeyRecord>()

  /**
   * The last list read, while no other process committed (SQLite): every token grant and
   * introspection asks for the keys, and they change only with a rotation. Writes through
   * this store drop it; `#generation` keeps a read that raced such a write from storing.
   */
  #cached: { version: number; keys: SigningKeyRecord[] } | undefined
  #generation = 0

  constructor(private readonly db: SqlDriver) {}

  async list(): Promise<SigningKeyRecord[]> {
    const version = this.db.externalChanges?.()
    const cached = this.#cached
    if (cached !== undefined && version !== undefined && cached.version === version)
      return [...cached.keys]
    const generation = this.#generation
    const keys = await this.#read()
    if (version !== undefined && generation === this.#generation)
      this.#cached = { version, keys: [...keys] }
    return keys
  }

  /** Drops the cached list: before a write (a read racing it must not store) and after it. */
  #changed<T>(write: Promise<T>): Promise<T> {
    this.#generation++
    this.#cached = undefined
    return write.finally(() => {
      this.#generation++
      this.#cached = undefined
    })
  }

  async #read(): Promise<SigningKeyRecord[]> {
    const rows = await this.db.all<Schedule>(
      `SELECT kid, created_at, publish_at, activate_at, retire_at, withdraw_at,
         CASE WHEN private_key_sealed IS NULL THEN 0 ELSE 1 END AS sealed
       FROM signing_keys ORDER BY created_at, kid`,
    )
    const out: SigningKeyRecord[] = []
    for (const r of rows) {
      let fixed = this.#fixed.get(r.kid)
      if (fixed === undefined || (r.sealed === 1) !== (fixed.privateKeySealed !== null)) {
        const row = await this.db.get<Row>('SELECT * FROM signing_keys WHERE kid = ?', [r.kid])
        if (row === undefined) continue // deleted between the two reads
        fixed = toRecord(row)
        if (fixed.privateKeySealed !== null) this.#fixed.set(r.kid, fixed)
      }
      out.push({
        ...fixed,
        createdAt: r.created_at,
        publishAt: r.publish_at,
        activateAt: r.activate_at,
        retireAt: r.retire_at,
        withdrawAt: r.withdraw_at,
      })
    }
    return out
  }

  rotate(
    key: SigningKeyRecord,
    retire: readonly KeyRetirement[],
    expectedNewest: string | null,
    now: number,
    event: AuditInput,
  ): Promise<boolean> {
    return this.#changed(
      this.db.transaction(async (tx) => {
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
      }),
    )
  }

  async sealLegacyKey(kid: string, sealed: Uint8Array): Promise<void> {
    await this.#changed(
      this.db.run(
        'UPDATE signing_keys SET private_key_sealed = ?, legacy_key_file = NULL WHERE kid = ?',
        [sealed, kid],
      ),
    )
  }

  async rotateNow(
    key: SigningKeyRecord,
    withdraw: readonly string[],
    now: number,
    event: AuditInput,
  ): Promise<void> {
    const write = this.db.transaction(async (tx) => {
      await tx.run(INSERT, insertParams(key))
      for (const kid of withdraw) {
        await tx.run('UPDATE signing_keys SET retire_at = ?, withdraw_at = ? WHERE kid = ?', [
          now,
          now,
          kid,
        ])
        // Only the unexpired ones (by the expiry index): the others can no longer be used, and
        // reading every access token kept until the purge held the writer for a long time.
        await tx.run(
          `UPDATE access_tokens SET revoked_at = ?
           WHERE kid = ? AND revoked_at IS NULL AND expires_at > ?`,
          [now, kid, now],
        )
      }
      await writeAudit(tx, now, event)
    })
    await this.#changed(write)
  }
}
