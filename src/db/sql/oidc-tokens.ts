import type { SqlDriver } from '../driver.js'
import type { OidcTokenStore } from '../port.js'

/** Uses of OIDC identity tokens; `commitEnrollment` records them (src/db/sql/certificates.ts). */
export class SqlOidcTokenStore implements OidcTokenStore {
  constructor(private readonly db: SqlDriver) {}

  async isUsed(tokenHash: string, now: number): Promise<boolean> {
    const row = await this.db.get(
      'SELECT 1 AS used FROM oidc_token_uses WHERE token_hash = ? AND expires_at > ?',
      [tokenHash, now],
    )
    return row !== undefined
  }

  purgeExpired(now: number): Promise<number> {
    // No audit event: forgetting the use of an expired token changes nothing it could do.
    return this.db.transaction((tx) =>
      tx.run('DELETE FROM oidc_token_uses WHERE expires_at <= ?', [now]),
    )
  }
}
