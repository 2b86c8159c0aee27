import { execFileSync } from 'node:child_process'
import { X509Certificate, createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readMigrations } from '../../src/db/sqlite/migrate.js'
import { tempFiles } from '../helpers/ca.js'
import { lineageOf } from '../helpers/lineage.js'
import { makeCsr, openssl } from '../helpers/openssl.js'
import { TestServer, type Credential } from '../helpers/server.js'
import { expectOAuthError, token } from '../helpers/tokens.js'

const FIXTURE = join(import.meta.dirname, '../fixtures/round-one')
const fixture = JSON.parse(readFileSync(join(FIXTURE, 'fixture.json'), 'utf8'))
const workload = {
  certPem: readFileSync(join(FIXTURE, 'workload-chain.pem'), 'utf8'),
  keyPem: readFileSync(join(FIXTURE, 'workload-key.pem'), 'utf8'),
}
const tokens = JSON.parse(readFileSync(join(FIXTURE, 'token.json'), 'utf8'))
const WEB = 'spiffe://example.org/round-one/web'

/**
 * A certificate as round one stored it (schema v4: no lineage columns), signed by the
 * fixture's own intermediate with openssl: how a round-one database holds renewal chains.
 */
function roundOneRenewal(
  db: Database.Database,
  dataDir: string,
  opts: { renewedFrom: string | null; revoked?: boolean; issuedAt: number },
): Credential {
  const { csrPem, keyPem } = makeCsr({ san: `URI:${WEB}` })
  const serial = `${(randomBytes(1)[0]! & 0x7f).toString(16).padStart(2, '0')}${randomBytes(15).toString('hex')}`
  const f = tempFiles({
    'csr.pem': csrPem,
    'ext.cnf': `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=URI:${WEB}\n`,
  })
  const out = `${f['csr.pem']}.crt`
  const ca = (name: string) => join(dataDir, 'ca', name)
  const r = openssl([
    'x509',
    '-req',
    '-in',
    f['csr.pem']!,
    '-CA',
    ca('intermediate.pem'),
    '-CAkey',
    ca('intermediate-key.pem'),
    '-set_serial',
    `0x${serial}`,
    '-days',
    '30',
    '-extfile',
    f['ext.cnf']!,
    '-out',
    out,
  ])
  if (r.code !== 0) throw new Error(r.out)
  const cert = new X509Certificate(readFileSync(out))
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' })
  db.prepare(
    `INSERT INTO certificates (serial, kind, spiffe_id, entry_id, thumbprint, spki_sha256,
       not_before, not_after, status, revoked_at, revocation_reason, renewed_from, der, issued_at)
     VALUES (?, 'workload', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  ).run(
    serial,
    WEB,
    fixture.entry_id,
    createHash('sha256').update(cert.raw).digest('base64url'),
    createHash('sha256').update(spki).digest('hex'),
    Date.parse(cert.validFrom),
    Date.parse(cert.validTo),
    opts.revoked ? 'revoked' : 'valid',
    opts.revoked ? opts.issuedAt : null,
    opts.revoked ? 'superseded' : null,
    opts.renewedFrom,
    cert.raw,
    opts.issuedAt,
  )
  const pem = cert.toString()
  return { certPem: pem, chainPem: pem, keyPem, serial }
}

/**
 * A data_dir written by the first release (schema v4; the signing key and the server's TLS key
 * in files) upgrades in place at start: the schema migrates, the keys move into the database
 * sealed, and everything issued before keeps working.
 */
describe('a round-one data_dir upgrades in place', () => {
  let s: TestServer
  let dataDir: string
  // Renewal chains written as round one did (renewed_from only): r → r2 → r3, and y → y2
  // where y2 was revoked.
  const chain: Record<string, Credential> = {}
  let revokedBefore: number
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certbound-upgrade-'))
    execFileSync('tar', ['xzf', join(FIXTURE, 'data.tar.gz'), '-C', dir])
    dataDir = join(dir, 'data')
    const db = new Database(join(dataDir, 'certbound.db'))
    try {
      const at = Date.now() - 60_000
      chain.r = roundOneRenewal(db, dataDir, { renewedFrom: null, issuedAt: at })
      chain.r2 = roundOneRenewal(db, dataDir, { renewedFrom: chain.r.serial, issuedAt: at + 1 })
      chain.r3 = roundOneRenewal(db, dataDir, { renewedFrom: chain.r2.serial, issuedAt: at + 2 })
      chain.y = roundOneRenewal(db, dataDir, { renewedFrom: null, issuedAt: at })
      chain.y2 = roundOneRenewal(db, dataDir, {
        renewedFrom: chain.y.serial,
        revoked: true,
        issuedAt: at + 1,
      })
      revokedBefore = (
        db.prepare(`SELECT count(*) AS n FROM certificates WHERE status = 'revoked'`).get() as {
          n: number
        }
      ).n
    } finally {
      db.close()
    }
    s = await TestServer.start(fixture.config, { dataDir })
  })
  afterAll(() => s.close())

  it('the schema is current; the key files are gone into the database, sealed', () => {
    const db = new Database(join(dataDir, 'certbound.db'), { readonly: true })
    try {
      const v = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number }
      expect(v.v).toBe(readMigrations().at(-1)!.version)
    } finally {
      db.close()
    }
    expect(existsSync(join(dataDir, 'tokens', `signing-${fixture.signing_kid}.pem`))).toBe(false)
    expect(existsSync(join(dataDir, 'server/tls-key.pem'))).toBe(false)
    expect(statSync(join(dataDir, 'ca/kek.key')).mode & 0o777).toBe(0o600)
    const files = ['certbound.db', 'certbound.db-wal'].map((f) => join(dataDir, f))
    const bytes = Buffer.concat(files.filter(existsSync).map((f) => readFileSync(f)))
    expect(bytes.includes('PRIVATE KEY')).toBe(false)
  })

  it('the old signing key still verifies and signs: old access token active, old refresh token works', async () => {
    const jwks = (await (
      await request(`${s.url}/.well-known/jwks.json`, { dispatcher: s.agent() })
    ).body.json()) as JSONWebKeySet
    expect(jwks.keys.map((k) => k.kid)).toContain(fixture.signing_kid)
    const set = createLocalJWKSet(jwks)
    await jwtVerify(tokens.access_token, set, { issuer: fixture.config.tokens.issuer })
    const introspected = await s.call('POST', '/oauth/introspect', {
      as: workload,
      form: { token: tokens.access_token },
    })
    expect(introspected.body.active).toBe(true)
    const refreshed = await s.call('POST', '/oauth/token', {
      as: workload,
      form: { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
    })
    expect(refreshed.status, refreshed.text).toBe(200)
    const { protectedHeader } = await jwtVerify(refreshed.body.access_token, set)
    expect(protectedHeader.kid).toBe(fixture.signing_kid)
  })

  it('lineages are backfilled from renewed_from without alarms: the newest valid certificate of each chain is current', async () => {
    const r = await lineageOf(s, chain.r!.serial)
    expect(r.status).toBe('active')
    expect(
      r.generations.map((g: { serial: string; generation: number; state: string }) => [
        g.serial,
        g.generation,
        g.state,
      ]),
    ).toEqual([
      [chain.r!.serial, 1, 'retired'],
      [chain.r2!.serial, 2, 'retired'],
      [chain.r3!.serial, 3, 'current'],
    ])
    const y = await lineageOf(s, chain.y!.serial)
    expect(y.generations.map((g: { state: string }) => g.state)).toEqual(['current', 'revoked'])
    const web = await lineageOf(s, fixture.workload_serial)
    expect(web.generations.map((g: { state: string }) => g.state)).toEqual(['current'])
    expect((await lineageOf(s, fixture.revoked_serial)).status).toBe('revoked')
    // No alarm, nothing revoked by the upgrade; the current generations work, a retired one is
    // refused (harmlessly, within renewal.clone_grace).
    expect(await s.store.audit.list({ action: 'lineage.clone_detected' })).toEqual([])
    const revoked = await s.query<{ n: number }>(
      `SELECT count(*) AS n FROM certificates WHERE status = 'revoked'`,
    )
    expect(revoked[0]!.n).toBe(revokedBefore)
    expect((await token(s, chain.r3!)).status).toBe(200)
    expect((await token(s, chain.y!)).status).toBe(200)
    expectOAuthError(await token(s, chain.r2!), 401, 'invalid_client')
    expect(r.generations).toHaveLength(3)
    expect((await lineageOf(s, chain.r!.serial)).status).toBe('active')
    // The round-one token family follows the workload's lineage.
    const families = await s.query<{ lineage_id: string }>(
      'SELECT c.lineage_id FROM token_families f JOIN certificates c ON c.serial = f.cert_serial',
    )
    expect(families.map((f) => f.lineage_id)).toContain(web.id)
  })

  it('certificates issued before keep their state: the workload renews, the revoked one is on the CRL', async () => {
    expect((await s.renew(workload)).status).toBe(201)
    const shown = await s.call('GET', `/v1/certificates/${fixture.revoked_serial}`, {
      as: s.admin,
    })
    expect([shown.body.status, shown.body.revocation_reason]).toEqual(['revoked', 'keyCompromise'])
    const crl = Buffer.from(
      await (await request(`${s.url}/v1/crl`, { dispatcher: s.agent() })).body.arrayBuffer(),
    )
    expect(crl.includes(Buffer.from(fixture.revoked_serial, 'hex'))).toBe(true)
  })
})

describe('several processes starting on one empty data_dir at the same moment', () => {
  it('exactly one CA is created, every process uses it, the database records it once', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'certbound-race-init-'))
    const servers = await Promise.all(
      Array.from({ length: 4 }, () => TestServer.start({}, { dataDir })),
    )
    try {
      const roots = new Set(servers.map((s) => s.running.ca.root.serialHex))
      expect(roots.size).toBe(1)
      // ... and one issuing CA, the same current one in every process.
      const issuers = new Set(servers.map((s) => s.running.ca.current.keyId))
      expect(issuers.size).toBe(1)
      const rows = await servers[0]!.store.certificates.caCertificates()
      expect(rows.map((r) => r.kind).sort()).toEqual(['intermediate', 'root'])
      const cas = await servers[0]!.query<{ key_id: string; kind: string }>(
        'SELECT key_id, kind FROM issuing_cas ORDER BY kind',
      )
      expect(cas.map((r) => r.kind)).toEqual(['intermediate', 'root'])
      expect(cas[0]!.key_id).toBe([...issuers][0])
      // Recorded once: one event per row, by whichever process committed first.
      const events = await servers[0]!.query<{ action: string }>(
        `SELECT action FROM audit_events WHERE action LIKE 'ca.record_%' ORDER BY action`,
      )
      expect(events.map((e) => e.action)).toEqual(['ca.record_intermediate', 'ca.record_root'])
      // Every process serves enrolment with that CA.
      for (const s of servers)
        expect(
          (await s.enroll(`spiffe://example.org/race/${s.url.split(':')[2]}`)).serial,
        ).toBeTruthy()
    } finally {
      for (const s of servers) await s.running.close()
    }
  })
})
