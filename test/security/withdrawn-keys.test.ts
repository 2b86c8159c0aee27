import { execFile } from 'node:child_process'
import { createPrivateKey, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVerifier, VerifyError, type Verifier } from '@certbound/verifier'
import { loadKeyEncryptionKey } from '../../src/ca/files.js'
import { TestServer, type Credential } from '../helpers/server.js'
import { grant } from '../helpers/tokens.js'

/*
 * Issue 7, weakness 4: a warm verifier kept accepting a withdrawn signing key for up to five
 * minutes after `keys rotate --now`: a token forged with the old key and a widened scope passed.
 */
describe('an emergency rotation reaches a warm verifier at its next JWKS refresh', () => {
  let s: TestServer
  let client: Credential
  let verifier: Verifier
  let dir: string

  beforeAll(async () => {
    s = await TestServer.start()
    client = await s.enroll('spiffe://example.org/warm')
    dir = mkdtempSync(join(tmpdir(), 'certbound-rotate-'))
    writeFileSync(
      join(dir, 'ca-config.yaml'),
      `trust_domain: example.org\ndata_dir: ${s.dataDir}\n`,
    )
    verifier = createVerifier({
      issuer: s.config.tokens.issuer,
      audience: [...s.config.tokens.audience],
      trustAnchors: s.bundlePem,
      intermediates: s.intermediatePem,
      jwksUri: `https://localhost:${s.running.address.port}/.well-known/jwks.json`,
      // The refresh interval, shortened for the test (default 60 s, the CA's max-age).
      jwks: { cacheMaxAgeMs: 1_000 },
    })
  })
  afterAll(async () => {
    await verifier.close()
    rmSync(dir, { recursive: true, force: true })
    await s.close()
  })

  it('the JWKS is cached for one minute by default and lists no withdrawn kid yet', async () => {
    const r = await s.call('GET', '/.well-known/jwks.json')
    expect(r.headers['cache-control']).toBe('public, max-age=60')
    expect(r.body.withdrawn_kids).toEqual([])
  })

  it('a token forged with the old key after `keys rotate --now` is refused as withdrawn', async () => {
    const real = (await grant(s, client)).access_token
    expect((await verifier.verify(real, client.certPem)).claims.sub).toBe(
      'spiffe://example.org/warm',
    )
    const oldKid = decodeProtectedHeader(real).kid!
    // The thief holds the old private key (unsealed here with the data_dir's key-encryption key).
    const row = (await s.store.signingKeys.list()).find((k) => k.kid === oldKid)!
    const kek = loadKeyEncryptionKey(s.dataDir)
    const oldKey = createPrivateKey(kek.open(row.privateKeySealed!, `signing-key:${oldKid}`))
    const forge = () =>
      new SignJWT({ ...decodeJwt(real), scope: 'admin everything', jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: oldKid })
        .sign(oldKey)
    // Before the rotation the forgery passes: that is what a stolen signing key means.
    expect((await verifier.verify(await forge(), client.certPem)).claims.scope).toBe(
      'admin everything',
    )

    const rotated = await new Promise<{ code: number; out: string }>((resolve) =>
      execFile(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/index.ts',
          '--config',
          join(dir, 'ca-config.yaml'),
          'keys',
          'rotate',
          '--now',
        ],
        { timeout: 30_000 },
        (error, stdout, stderr) => resolve({ code: error ? 1 : 0, out: stdout + stderr }),
      ),
    )
    expect(rotated.code, rotated.out).toBe(0)
    const jwks = (await s.call('GET', '/.well-known/jwks.json')).body
    expect(jwks.withdrawn_kids).toContain(oldKid)
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).not.toContain(oldKid)

    // At the verifier's next refresh (1 s here, 60 s by default) the old kid is refused.
    let err: unknown
    for (let i = 0; i < 100; i++) {
      err = await verifier.verify(await forge(), client.certPem).catch((e: unknown) => e)
      if (err instanceof VerifyError) break
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(err).toBeInstanceOf(VerifyError)
    expect((err as VerifyError).code).toBe('ERR_TOKEN_INVALID')
    expect((err as VerifyError).message).toBe('the token is signed with a key the issuer withdrew')
    // The CA signs with the new key, which the same verifier accepts.
    const fresh = (await grant(s, client)).access_token
    expect(decodeProtectedHeader(fresh).kid).not.toBe(oldKid)
    expect((await verifier.verify(fresh, client.certPem)).claims.sub).toBe(
      'spiffe://example.org/warm',
    )
  })
})
