import { randomBytes, randomUUID } from 'node:crypto'
import { closeSync, existsSync, fsyncSync, openSync, statSync } from 'node:fs'
import Database from 'better-sqlite3'
import { orderedTokenId, uuidV7 } from '../../src/crypto/ordered-id.js'

/**
 * The one place the bench writes SQL: synthetic rows bulk-inserted into a stopped server's
 * SQLite file for the scale section (`npm run bench -- --scale`). It knows today's schema
 * (migrations/0001-0004); when the schema changes, `checkSchema` says what to update here.
 * Everything else in the bench goes through the HTTP API.
 */

export interface BulkCounts {
  /** Workload certificates, `revoked` of them revoked (unexpired, so every CRL lists them). */
  readonly certificates: number
  readonly revoked: number
  /** Token families, each with one refresh token and one access token, on valid certificates. */
  readonly families: number
  /** Further families bound to the `victim` certificate (the cascade measurement). */
  readonly cascade: number
}

export interface BulkResult {
  readonly certSeconds: number
  readonly familySeconds: number
  /** On-disk growth (database + WAL after a checkpoint) per row inserted. */
  readonly bytesPerCertificate: number
  readonly bytesPerFamily: number
  readonly fileBytes: number
}

/** Columns this module fills, per table: a NOT NULL column without a default elsewhere fails. */
const FILLS: Record<string, readonly string[]> = {
  entries: ['id', 'spiffe_id', 'dns_names', 'enabled', 'created_at', 'updated_at'],
  certificates: [
    'serial',
    'kind',
    'spiffe_id',
    'entry_id',
    'thumbprint',
    'spki_sha256',
    'not_before',
    'not_after',
    'status',
    'revoked_at',
    'revocation_reason',
    'der',
    'issued_at',
    'issuer_key_id',
  ],
  token_families: ['id', 'spiffe_id', 'entry_id', 'cert_serial', 'status', 'created_at'],
  refresh_tokens: ['id', 'token_hash', 'family_id', 'issued_at', 'expires_at'],
  access_tokens: ['jti', 'family_id', 'cert_serial', 'spiffe_id', 'kid', 'issued_at', 'expires_at'],
}

function checkSchema(db: Database.Database): void {
  for (const [table, fills] of Object.entries(FILLS)) {
    const cols = db.prepare(`PRAGMA table_info(${table})`).all() as {
      name: string
      notnull: number
      dflt_value: unknown
      pk: number
    }[]
    if (cols.length === 0)
      throw new Error(`bench/scale/sqlite-bulk.ts: no table ${table}; update it`)
    const names = new Set(cols.map((c) => c.name))
    const missing = fills.filter((c) => !names.has(c))
    const unfilled = cols.filter(
      (c) => c.notnull && c.dflt_value === null && !c.pk && !fills.includes(c.name),
    )
    if (missing.length || unfilled.length)
      throw new Error(
        `bench/scale/sqlite-bulk.ts is out of date for table ${table}: ` +
          `gone ${missing.join(',') || '-'}, new required ${unfilled.map((c) => c.name).join(',') || '-'}`,
      )
  }
}

/** Database + WAL size after folding the WAL back in. */
function diskBytes(db: Database.Database, file: string): number {
  db.pragma('wal_checkpoint(TRUNCATE)')
  const wal = `${file}-wal`
  return statSync(file).size + (existsSync(wal) ? statSync(wal).size : 0)
}

const hex = (n: number) => randomBytes(n).toString('hex')

/** A random positive 16-byte serial, as the CA makes them (lowercase hex of the DER bytes). */
function serial(): string {
  const b = randomBytes(16)
  b[0]! &= 0x7f
  if (b[0] === 0) b[0] = 1
  return b.toString('hex')
}

/** Inserts the synthetic rows; `victim` is a real certificate's serial (issued over the API). */
export function bulkInsert(file: string, counts: BulkCounts, victim: string): BulkResult {
  const db = new Database(file)
  try {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = OFF') // a bulk load, not an acknowledged change
    db.pragma('cache_size = -262144')
    checkSchema(db)
    const now = Date.now()
    const template = db
      .prepare(
        `SELECT der, kid, issuer_key_id FROM certificates, signing_keys WHERE kind = 'workload' LIMIT 1`,
      )
      .get() as { der: Buffer; kid: string; issuer_key_id: string } | undefined
    if (!template) throw new Error('the database has no workload certificate to copy')
    const victimRow = db
      .prepare('SELECT spiffe_id, entry_id FROM certificates WHERE serial = ?')
      .get(victim) as { spiffe_id: string; entry_id: string } | undefined
    if (!victimRow) throw new Error(`no certificate ${victim}`)
    const before = diskBytes(db, file)

    const entries = Array.from({ length: 1000 }, (_, i) => ({
      id: randomUUID(),
      spiffe: `spiffe://example.org/scale/w${i}`,
    }))
    const insEntry = db.prepare(
      `INSERT INTO entries (id, spiffe_id, dns_names, enabled, created_at, updated_at)
       VALUES (?, ?, '[]', 1, ?, ?)`,
    )
    const insCert = db.prepare(
      `INSERT INTO certificates (serial, kind, spiffe_id, entry_id, thumbprint, spki_sha256,
         not_before, not_after, status, revoked_at, revocation_reason, der, issued_at, issuer_key_id)
       VALUES (?, 'workload', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    const valid: { serial: string; e: (typeof entries)[number] }[] = []
    const t0 = performance.now()
    const certBatch = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const e = entries[i % entries.length]!
        const s = serial()
        const revoked = i < counts.revoked
        const issued = now - ((i * 37) % 3_600_000)
        insCert.run(
          s,
          e.spiffe,
          e.id,
          randomBytes(32).toString('base64url'),
          hex(32),
          issued - 60_000,
          issued + 3_600_000 + 86_400_000, // unexpired for the whole run
          revoked ? 'revoked' : 'valid',
          revoked ? issued + 1000 : null,
          revoked ? 'unspecified' : null,
          template.der,
          issued,
          // As the server writes it: rows without one are a pre-v6 database's, which every
          // start attributes to init's CA (a million-row UPDATE before the first measurement).
          template.issuer_key_id,
        )
        if (!revoked && valid.length < counts.families) valid.push({ serial: s, e })
      }
    })
    db.transaction(() => {
      for (const e of entries) insEntry.run(e.id, e.spiffe, now, now)
    })()
    for (let i = 0; i < counts.certificates; i += 50_000)
      certBatch(i, Math.min(counts.certificates, i + 50_000))
    const certSeconds = (performance.now() - t0) / 1000
    const afterCerts = diskBytes(db, file)

    const insFamily = db.prepare(
      `INSERT INTO token_families (id, spiffe_id, entry_id, cert_serial, status, created_at)
       VALUES (?, ?, ?, ?, 'active', ?)`,
    )
    const insRefresh = db.prepare(
      `INSERT INTO refresh_tokens (id, token_hash, family_id, issued_at, expires_at)
       VALUES (?, ?, ?, ?, ?)`,
    )
    const insAccess = db.prepare(
      `INSERT INTO access_tokens (jti, family_id, cert_serial, spiffe_id, kid, issued_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    // Ids as the server makes them (time-ordered, issued over the hour before `now`), so that
    // the indexes on them have the shape a server's own rows give them.
    let issuedCount = 0
    const total = counts.families + counts.cascade
    const family = (certSerial: string, spiffe: string, entryId: string) => {
      const at = now - 3_600_000 + Math.floor((issuedCount++ * 3_600_000) / Math.max(1, total))
      const id = uuidV7(at)
      insFamily.run(id, spiffe, entryId, certSerial, at)
      insRefresh.run(orderedTokenId(at), hex(32), id, at, at + 86_400_000)
      insAccess.run(uuidV7(at), id, certSerial, spiffe, template.kid, at, now + 300_000)
    }
    const t1 = performance.now()
    const familyBatch = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const v = valid[i % valid.length]!
        family(v.serial, v.e.spiffe, v.e.id)
      }
    })
    if (valid.length > 0)
      for (let i = 0; i < counts.families; i += 50_000)
        familyBatch(i, Math.min(counts.families, i + 50_000))
    db.transaction(() => {
      for (let i = 0; i < counts.cascade; i++)
        family(victim, victimRow.spiffe_id, victimRow.entry_id)
    })()
    const familySeconds = (performance.now() - t1) / 1000
    const fileBytes = diskBytes(db, file)
    return {
      certSeconds,
      familySeconds,
      bytesPerCertificate: (afterCerts - before) / Math.max(1, counts.certificates),
      bytesPerFamily: (fileBytes - afterCerts) / Math.max(1, counts.families + counts.cascade),
      fileBytes,
    }
  } finally {
    db.close()
    // Written with synchronous=OFF: gigabytes of dirty pages the kernel would otherwise write
    // back while the big database is measured, stalling every WAL flush of the server behind
    // them (ext4 orders data before its journal commits). A database that grew over months has
    // no such backlog: flush it first, then measure.
    const fd = openSync(file, 'r+')
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
  }
}

/** Active token families still bound to `serial` (read-only, beside the running server). */
export function activeFamilies(file: string, serial: string): number {
  const db = new Database(file, { readonly: true })
  try {
    return (
      db
        .prepare(
          `SELECT count(*) AS n FROM token_families WHERE cert_serial = ? AND status = 'active'`,
        )
        .get(serial) as { n: number }
    ).n
  } finally {
    db.close()
  }
}
