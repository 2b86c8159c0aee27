import { createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadKeyEncryptionKey } from '../../src/ca/files.js'
import { configFromObject } from '../../src/config/load.js'
import { makeCsr } from '../helpers/openssl.js'
import { freePort } from '../helpers/process-server.js'
import { TestServer, type ApiResponse } from '../helpers/server.js'
import { grant, refresh, revoke } from '../helpers/tokens.js'

/*
 * Issue 14 (LIFECYCLE invariant 8): join tokens, refresh tokens and private keys never appear in
 * clear in the database, the logs (captured at trace level), the metrics (once metrics.listen
 * exists) or any response body — including the error bodies of requests that put a secret
 * where it does not belong. Every place is collected, then scanned for every secret.
 */

/** The ways a private key could leak: its PEM body, each PEM line, its DER, its scalar. */
function keyFragments(pem: string): string[] {
  const body = pem.replace(/-----[A-Z ]+-----/g, '').trim()
  const der = Buffer.from(body.replace(/\s/g, ''), 'base64')
  const jwk = createPrivateKey(pem).export({ format: 'jwk' }) as { d?: string }
  const d = jwk.d ? Buffer.from(jwk.d, 'base64url') : undefined
  return [
    body.replace(/\s/g, ''),
    ...body.split(/\s+/).filter((l) => l.length >= 40),
    der.toString('hex'),
    der.toString('latin1'),
    ...(d ? [jwk.d!, d.toString('hex'), d.toString('base64'), d.toString('latin1')] : []),
  ]
}

function bytesFragments(b: Buffer): string[] {
  return [b.toString('hex'), b.toString('base64'), b.toString('base64url'), b.toString('latin1')]
}

/** `metrics.listen` where the config takes it (issue 14's metrics), else undefined. */
async function metricsConfig(): Promise<Record<string, unknown> | undefined> {
  const metrics = { listen: `127.0.0.1:${await freePort()}` }
  try {
    configFromObject({ data_dir: '/nonexistent', metrics })
    return { metrics }
  } catch {
    return undefined
  }
}

describe('no secret in clear in the database, the logs, the metrics or any error body', () => {
  const logs: string[] = []
  const bodies: string[] = []
  let s: TestServer
  let metrics: Record<string, any> | undefined
  beforeAll(async () => {
    metrics = await metricsConfig()
    s = await TestServer.start(metrics ?? {}, {
      logger: pino({ level: 'trace' }, { write: (line: string) => void logs.push(line) }),
    })
  })
  afterAll(() => s.close())

  /** Error bodies are scanned; a success delivers a secret once, by design (its body is not). */
  const keep = (r: ApiResponse) => {
    if (r.status >= 400) bodies.push(r.text)
    return r
  }

  it('after enrolment, grants, refreshes, reuse, revocation and misplaced secrets', async () => {
    const spiffeId = 'spiffe://example.org/scan/w'
    const entryId = await s.createEntry(spiffeId, { dns_names: ['scan.example.org'] })
    const joinToken = await s.joinToken(entryId)
    const unused = await s.joinToken(entryId)
    const { csrPem, keyPem } = makeCsr({ san: `URI:${spiffeId}` })
    const enrolled = keep(
      await s.call('POST', '/v1/enroll', {
        headers: { authorization: `Bearer ${joinToken}` },
        json: { csr: csrPem },
      }),
    )
    expect(enrolled.status, enrolled.text).toBe(201)
    const cred = { certPem: enrolled.body.certificate, keyPem }
    const t1 = await grant(s, cred)
    const t2 = keep(await refresh(s, cred, t1.refresh_token)).body
    keep(await refresh(s, cred, t1.refresh_token)) // reuse: the family dies
    const t3 = await grant(s, cred)
    keep(await revoke(s, cred, t3.refresh_token))
    const t4 = await grant(s, cred)
    const tokens = [
      joinToken,
      unused,
      t1.refresh_token,
      t2.refresh_token,
      t3.refresh_token,
      t4.refresh_token,
    ]

    // Secrets where they do not belong, refused: no refusal may echo or keep them. (A secret
    // sent as a well-formed scope is a scope to the server: granted, kept; not tried here.)
    const as = { as: s.admin }
    for (const secret of [unused, t4.refresh_token, keyPem]) {
      const wrong = [
        s.call('POST', '/v1/entries', { ...as, json: { spiffe_id: secret } }),
        s.call('POST', '/v1/entries', {
          ...as,
          json: { spiffe_id: 'spiffe://example.org/scan/x', [secret]: 1 },
        }),
        s.call('POST', '/v1/entries', {
          ...as,
          json: { spiffe_id: 'spiffe://example.org/scan/y', dns_names: [secret] },
        }),
        s.call('POST', '/v1/entries', {
          ...as,
          json: { spiffe_id: 'spiffe://example.org/scan/z', ttl: secret, scopes: [secret] },
        }),
        s.call('POST', `/v1/entries/${entryId}/join-tokens`, { ...as, json: { ttl: secret } }),
        s.call('POST', `/v1/certificates/${enrolled.body.serial}/revoke`, {
          ...as,
          json: { reason: secret },
        }),
        s.call('POST', '/v1/enroll', {
          headers: { authorization: `Bearer ${secret}` },
          json: { csr: secret },
        }),
        s.call('POST', '/v1/renew', { as: cred, json: { csr: secret, ttl: secret } }),
        ...['grant_type', 'client_id', 'token_type_hint', 'code'].map((field) =>
          s.call('POST', '/oauth/token', {
            as: cred,
            form: { grant_type: 'client_credentials', [field]: secret },
          }),
        ),
        s.call('POST', '/oauth/token', {
          as: cred,
          body: `${secret}=1&${secret}=2`,
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }),
        s.call('POST', '/oauth/token', {
          as: cred,
          json: { grant_type: 'refresh_token', refresh_token: secret },
        }),
        s.call('POST', '/oauth/introspect', {
          as: cred,
          form: { token: secret, token_type_hint: secret },
        }),
      ]
      // A PEM (newlines) cannot be a header value: undici refuses to send that one.
      for (const r of await Promise.allSettled(wrong)) if (r.status === 'fulfilled') keep(r.value)
    }

    const kek = readFileSync(join(s.dataDir, 'ca/kek.key'))
    const keys = [
      keyPem,
      s.admin.keyPem,
      (await s.serverCredential()).keyPem,
      readFileSync(join(s.dataDir, 'ca/root-key.pem'), 'utf8'),
      readFileSync(join(s.dataDir, 'ca/intermediate-key.pem'), 'utf8'),
      ...(await signingKeys(s)),
    ]
    const secrets = [
      ...tokens.flatMap((t) => [t, t.slice(16)]),
      ...keys.flatMap(keyFragments),
      ...bytesFragments(kek),
    ]

    const places: [string, string[]][] = [
      ['the database', await s.storedValues()],
      ['the logs', logs],
      ['a response body', bodies],
      ['the metrics', metrics ? [await scrape(metrics.metrics.listen)] : []],
    ]
    expect(logs.length).toBeGreaterThan(20)
    expect(bodies.length).toBeGreaterThan(30)
    for (const [place, values] of places)
      for (const v of values)
        for (const secret of secrets)
          expect(
            v.includes(secret),
            `${place} holds a secret: …${v.slice(Math.max(0, v.indexOf(secret) - 80), v.indexOf(secret) + 20)}`,
          ).toBe(false)
  })
})

/** The token-signing keys, unsealed here with the key-encryption key (to know what to look for). */
async function signingKeys(s: TestServer): Promise<string[]> {
  const kek = loadKeyEncryptionKey(s.dataDir)
  const rows = await s.query<{ kid: string; private_key_sealed: Uint8Array }>(
    'SELECT kid, private_key_sealed FROM signing_keys',
  )
  expect(rows.length).toBeGreaterThan(0)
  return rows.map((r) => kek.open(r.private_key_sealed, `signing-key:${r.kid}`).toString('utf8'))
}

async function scrape(listen: string): Promise<string> {
  const r = await request(`http://${listen}/metrics`)
  return r.body.text()
}
