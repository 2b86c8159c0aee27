import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Clock } from '../../src/clock.js'
import { loadKeyEncryptionKey } from '../../src/ca/files.js'
import { SigningKeys } from '../../src/tokens/keys.js'
import type { Credential } from '../helpers/server.js'
import { TestServer } from '../helpers/server.js'
import { fetchJwks, grant, introspect, kidOf, refresh, verifyWithServedJwks } from './helpers.js'

/**
 * The key schedule runs on the injected clock; TLS runs on real time. So the clock only
 * moves forward by minutes here, well inside the certificates' one-hour validity.
 */
class TestClock implements Clock {
  offsetMs = 0
  now(): Date {
    return new Date(Date.now() + this.offsetMs)
  }
  advance(ms: number): void {
    this.offsetMs += ms
  }
}

const SKEW_MS = 60_000 // src/tokens/keys.ts: allowance for resource-server clock skew

describe("signing-key rotation: every unexpired token's kid is always in the JWKS", () => {
  const clock = new TestClock()
  let s: TestServer
  let a: Credential
  let rs: Credential
  const kids = async () => (await fetchJwks(s)).keys.map((k) => k.kid)

  beforeAll(async () => {
    s = await TestServer.start(
      { tokens: { access_token_ttl: '30s', jwks_cache_ttl: '10s' } },
      { clock },
    )
    ;[a, rs] = await Promise.all([
      s.enroll('spiffe://example.org/keys/w'),
      s.enroll('spiffe://example.org/keys/rs'),
    ])
  })
  afterAll(() => s.close())

  it('publishes a planned key before it signs, and withdraws the old one only after its tokens expired', async () => {
    const before = await grant(s, a)
    const k1 = kidOf(before.access_token)
    expect(await kids()).toEqual([k1])

    const rotatedAt = clock.now().getTime()
    const k2 = (await new SigningKeys({
      config: s.config,
      store: s.store,
      clock,
      kek: loadKeyEncryptionKey(s.dataDir),
    }).rotate({
      immediate: false,
      actor: 'test',
    }))!.kid
    const activateAt = rotatedAt + 30_000 + 10_000 + SKEW_MS
    // Published at once, but not signing for one access-token lifetime plus one JWKS cache lifetime.
    expect((await kids()).sort()).toEqual([k1, k2].sort())
    expect(kidOf((await grant(s, a)).access_token)).toBe(k1)
    clock.offsetMs += activateAt - 2_000 - clock.now().getTime()
    const lastOld = await grant(s, a)
    expect(kidOf(lastOld.access_token)).toBe(k1)

    clock.offsetMs += activateAt + 1_000 - clock.now().getTime()
    const firstNew = await grant(s, a)
    expect(kidOf(firstNew.access_token)).toBe(k2)
    // Both verify with jose from the JWKS served now, and both introspect active.
    for (const t of [lastOld, firstNew]) {
      const { protectedHeader } = await verifyWithServedJwks(s, t.access_token, clock.now())
      expect([k1, k2]).toContain(protectedHeader.kid)
      expect((await introspect(s, rs, t.access_token)).body.active).toBe(true)
    }
    // A refresh after the switch is signed by the new key too.
    const refreshed = await refresh(s, a, lastOld.refresh_token)
    expect(kidOf(refreshed.body.access_token)).toBe(k2)

    // The last k1 token expires at activateAt - 2s + 30s; k1 stays published past that.
    clock.offsetMs += activateAt + 30_000 + SKEW_MS - 1_000 - clock.now().getTime()
    expect((await kids()).sort()).toEqual([k1, k2].sort())
    clock.advance(2_000)
    expect(await kids()).toEqual([k2])
    // Old tokens can no longer be verified, new ones can.
    await expect(
      verifyWithServedJwks(s, lastOld.access_token, new Date(activateAt - 2_000)),
    ).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' })
    const later = await grant(s, a)
    await verifyWithServedJwks(s, later.access_token, clock.now())
    expect(kidOf(later.access_token)).toBe(k2)
  })

  it('an emergency rotation withdraws the old key at once and kills the tokens it signed', async () => {
    const t = await grant(s, a)
    const old = kidOf(t.access_token)
    expect((await introspect(s, rs, t.access_token)).body.active).toBe(true)
    const k3 = (await new SigningKeys({
      config: s.config,
      store: s.store,
      clock,
      kek: loadKeyEncryptionKey(s.dataDir),
    }).rotate({
      immediate: true,
      actor: 'test',
    }))!.kid
    expect(await kids()).toEqual([k3])
    await expect(verifyWithServedJwks(s, t.access_token, clock.now())).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    })
    expect((await introspect(s, rs, t.access_token)).body).toEqual({ active: false })
    const fresh = await grant(s, a)
    expect(kidOf(fresh.access_token)).toBe(k3)
    expect(kidOf(fresh.access_token)).not.toBe(old)
    await verifyWithServedJwks(s, fresh.access_token, clock.now())
    expect((await introspect(s, rs, fresh.access_token)).body.active).toBe(true)
    // Refresh tokens are not signed; the family carries on with a token from the new key.
    const r = await refresh(s, a, t.refresh_token)
    expect(r.status, r.text).toBe(200)
    expect(kidOf(r.body.access_token)).toBe(k3)
  })

  it('keeps signing keys sealed in the database (never in clear) and never serves private parts', async () => {
    const keys = await s.store.signingKeys.list()
    expect(keys.length).toBeGreaterThanOrEqual(3)
    const files = ['certbound.db', 'certbound.db-wal'].map((f) => join(s.dataDir, f))
    const db = Buffer.concat(files.filter(existsSync).map((f) => readFileSync(f)))
    for (const k of keys) {
      expect(k.privateKeySealed!.length).toBeGreaterThan(100)
      expect(Buffer.from(k.privateKeySealed!).includes('PRIVATE KEY')).toBe(false)
    }
    expect(db.includes('PRIVATE KEY')).toBe(false)
    expect(statSync(join(s.dataDir, 'ca/kek.key')).mode & 0o777).toBe(0o600)
    for (const k of (await fetchJwks(s)).keys) expect(k).not.toHaveProperty('d')
  })
})

describe('automatic rotation by age (tokens.signing_key_rotation)', () => {
  const clock = new TestClock()
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start(
      { tokens: { access_token_ttl: '30s', jwks_cache_ttl: '10s', signing_key_rotation: '2m' } },
      { clock },
    )
  })
  afterAll(() => s.close())

  it('schedules a successor once the newest key is older than the period, and only one', async () => {
    const keys = new SigningKeys({
      config: s.config,
      store: s.store,
      clock,
      kek: loadKeyEncryptionKey(s.dataDir),
    })
    expect(await keys.rotateIfDue()).toBe(false)
    const [k1] = (await fetchJwks(s)).keys.map((k) => k.kid)
    clock.advance(121_000)
    expect(await keys.rotateIfDue()).toBe(true)
    expect(await keys.rotateIfDue()).toBe(false) // a successor is already scheduled
    const published = (await fetchJwks(s)).keys.map((k) => k.kid)
    expect(published).toHaveLength(2)
    expect(published).toContain(k1)
  })
})

describe('certbound keys rotate --now (CLI) against a running server', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  it("withdraws the old key from the running server's JWKS at once and kills its tokens", async () => {
    const [a, rs] = await Promise.all([
      s.enroll('spiffe://example.org/cli/w'),
      s.enroll('spiffe://example.org/cli/rs'),
    ])
    const t = await grant(s, a)
    const configFile = join(s.dataDir, 'ca-config.yaml')
    writeFileSync(
      configFile,
      `trust_domain: example.org\ndata_dir: ${s.dataDir}\nlog_level: silent\n`,
    )
    const cli = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', 'keys', 'rotate', '--now', '--config', configFile],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    )
    expect(cli.status, cli.stderr).toBe(0)
    const { kid } = JSON.parse(cli.stdout)
    expect(kid).not.toBe(kidOf(t.access_token))
    expect((await fetchJwks(s)).keys.map((k) => k.kid)).toEqual([kid])
    expect((await introspect(s, rs, t.access_token)).body).toEqual({ active: false })
    const fresh = await grant(s, a)
    expect(kidOf(fresh.access_token)).toBe(kid)
    await verifyWithServedJwks(s, fresh.access_token)
  })
})
