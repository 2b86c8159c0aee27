import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readMigrations } from '../../src/db/sqlite/migrate.js'
import { TestServer } from '../helpers/server.js'

const FIXTURE = join(import.meta.dirname, '../fixtures/round-one')
const fixture = JSON.parse(readFileSync(join(FIXTURE, 'fixture.json'), 'utf8'))
const workload = {
  certPem: readFileSync(join(FIXTURE, 'workload-chain.pem'), 'utf8'),
  keyPem: readFileSync(join(FIXTURE, 'workload-key.pem'), 'utf8'),
}
const tokens = JSON.parse(readFileSync(join(FIXTURE, 'token.json'), 'utf8'))

/**
 * A data_dir written by the first release (schema v4; the signing key and the server's TLS key
 * in files) upgrades in place at start: the schema migrates, the keys move into the database
 * sealed, and everything issued before keeps working.
 */
describe('a round-one data_dir upgrades in place', () => {
  let s: TestServer
  let dataDir: string
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certbound-upgrade-'))
    execFileSync('tar', ['xzf', join(FIXTURE, 'data.tar.gz'), '-C', dir])
    dataDir = join(dir, 'data')
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
      const rows = await servers[0]!.store.certificates.caCertificates()
      expect(rows.map((r) => r.kind).sort()).toEqual(['intermediate', 'root'])
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
