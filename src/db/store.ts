import { join } from 'node:path'
import type { Database } from 'better-sqlite3'
import { AuditRepository } from './audit.js'
import { CertificateRepository } from './certificates.js'
import { EntryRepository } from './entries.js'
import { openDatabase, type OpenOptions } from './open.js'
import { SigningKeyRepository } from './signing-keys.js'
import { TokenRepository } from './tokens.js'

/**
 * The persistence boundary. Every state transition is one repository method that runs one
 * transaction (change + audit event), and every method returns a Promise, so a second
 * backend (PostgreSQL) can implement the same shape without touching ca/ or tokens/.
 */
export interface Store {
  readonly audit: AuditRepository
  readonly entries: EntryRepository
  readonly certificates: CertificateRepository
  readonly tokens: TokenRepository
  readonly signingKeys: SigningKeyRepository
  close(): void
}

/**
 * Memoises `prepare` by SQL text: the repositories keep their SQL next to the code that runs
 * it, and each statement is still compiled once, not on every request. (Statements are never
 * iterated, so sharing one between callers is safe.)
 */
function cacheStatements(db: Database): void {
  const prepare = db.prepare.bind(db)
  const cache = new Map<string, ReturnType<Database['prepare']>>()
  db.prepare = ((sql: string) => {
    let statement = cache.get(sql)
    if (!statement) {
      statement = prepare(sql)
      cache.set(sql, statement)
    }
    return statement
  }) as Database['prepare']
}

export function openStore(dataDir: string, options: OpenOptions = {}): Store {
  return storeFromDatabase(openDatabase(join(dataDir, 'certbound.db'), options))
}

export function storeFromDatabase(db: Database): Store {
  cacheStatements(db)
  const audit = new AuditRepository(db)
  return {
    audit,
    entries: new EntryRepository(db, audit),
    certificates: new CertificateRepository(db, audit),
    tokens: new TokenRepository(db, audit),
    signingKeys: new SigningKeyRepository(db, audit),
    close: () => {
      if (db.open) db.close()
    },
  }
}
