import { createHmac } from 'node:crypto'
import { SignJWT, base64url } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVerifier, verifyBoundToken, VerifyError } from '@certbound/verifier'
import type { Verifier, VerifierOptions } from '@certbound/verifier'
import { startIssuer } from '../helpers/verifier/issuer.js'
import type { FixtureIssuer } from '../helpers/verifier/issuer.js'
import { createTestPki } from '../helpers/verifier/pki.js'
import type { Issued, TestPki } from '../helpers/verifier/pki.js'

let pki: TestPki
let issuer: FixtureIssuer
let options: VerifierOptions
let verifier: Verifier
let a: Issued
let b: Issued
const verifiers: Verifier[] = []

function make(extra: Partial<VerifierOptions> = {}): Verifier {
  const v = createVerifier({ ...options, ...extra })
  verifiers.push(v)
  return v
}

async function refused(p: Promise<unknown>, code: string, message?: RegExp) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(VerifyError)
  expect((err as VerifyError).code).toBe(code)
  if (message) expect((err as VerifyError).message).toMatch(message)
}

function unsigned(header: object, payload: object): string {
  const enc = (v: object) => base64url.encode(JSON.stringify(v))
  return `${enc(header)}.${enc(payload)}.`
}

beforeAll(async () => {
  pki = createTestPki()
  a = pki.leaf('a')
  b = pki.leaf('b')
  issuer = await startIssuer(pki)
  options = {
    issuer: issuer.url,
    audience: issuer.url,
    trustAnchors: pki.rootPem,
    intermediates: pki.intermediatePem,
  }
  verifier = make()
})

afterAll(async () => {
  await Promise.all(verifiers.map((v) => v.close()))
  await issuer?.close()
  pki?.cleanup()
})

describe('verifyBoundToken', () => {
  it('accepts a token with the certificate it is bound to (X509Certificate, PEM or DER)', async () => {
    const token = await issuer.mint(a)
    const result = await verifier.verify(token, a.certificate)
    expect(result.claims.sub).toBe(a.spiffeId)
    expect(result.thumbprint).toBe(a.thumbprint)
    expect(result.claims.cnf['x5t#S256']).toBe(a.thumbprint)
    expect((await verifier.verify(token, a.certPem)).claims.jti).toBe(result.claims.jti)
    expect((await verifier.verify(token, a.certificate.raw)).claims.jti).toBe(result.claims.jti)
  })

  it('keeps one verifier (and one JWKS cache) per options object', async () => {
    const opts = { ...options }
    const before = issuer.jwksFetches
    for (let i = 0; i < 3; i++) await verifyBoundToken(await issuer.mint(a), a.certificate, opts)
    expect(issuer.jwksFetches - before).toBe(1)
    await verifyBoundToken(await issuer.mint(a), a.certificate, verifier)
  })

  it('rejects another certificate', async () => {
    await refused(
      verifier.verify(await issuer.mint(a), b.certificate),
      'ERR_TOKEN_BINDING_MISMATCH',
    )
  })

  it('rejects a token whose subject the bound certificate does not name', async () => {
    // As a forged token (stolen signing key) would be: bound to b's certificate, naming a.
    const token = await issuer.mint(b, { claims: { sub: a.spiffeId, client_id: a.spiffeId } })
    await refused(verifier.verify(token, b.certificate), 'ERR_TOKEN_BINDING_MISMATCH', /subject/)
  })

  it('rejects a request without a certificate', async () => {
    const token = await issuer.mint(a)
    await refused(verifier.verify(token, undefined), 'ERR_CLIENT_CERT_REQUIRED', /no client/)
    await refused(verifier.verify(token, null), 'ERR_CLIENT_CERT_REQUIRED')
    await refused(verifier.verify(token, 'not a certificate'), 'ERR_CLIENT_CERT_REQUIRED')
  })

  it('rejects a certificate from another CA, even with a token bound to it', async () => {
    const token = await issuer.mint(pki.rogue)
    await refused(
      verifier.verify(token, pki.rogue.certificate),
      'ERR_CLIENT_CERT_REQUIRED',
      /chain/,
    )
  })

  it('rejects a CA certificate as the client certificate', async () => {
    const token = await issuer.mint(pki.intermediate)
    await refused(
      verifier.verify(token, pki.intermediate.certificate),
      'ERR_CLIENT_CERT_REQUIRED',
      /CA/,
    )
  })

  it('rejects a certificate outside its validity window', async () => {
    const later = new Date(Date.now() + 3 * 86_400_000)
    const v = make({ clock: { now: () => later } })
    const exp = Math.floor(later.getTime() / 1000) + 60
    const token = await issuer.mint(a, { claims: { iat: exp - 120, exp } })
    await refused(v.verify(token, a.certificate), 'ERR_CLIENT_CERT_REQUIRED', /validity/)
  })

  it('remembers a validated certificate per bytes, and still refuses it outside its window', async () => {
    let now = new Date()
    const v = make({ clock: { now: () => now } })
    const token = await issuer.mint(a)
    expect((await v.verify(token, a.certificate)).thumbprint).toBe(a.thumbprint)
    // The same bytes as another object or as PEM: the remembered path, the same answer.
    expect((await v.verify(token, a.certPem)).thumbprint).toBe(a.thumbprint)
    now = new Date(Date.now() + 3 * 86_400_000)
    await refused(v.verify(token, a.certificate), 'ERR_CLIENT_CERT_REQUIRED', /validity/)
    // Another certificate is never answered from the first one's entry.
    now = new Date()
    await refused(v.verify(token, b.certificate), 'ERR_TOKEN_BINDING_MISMATCH')
    await refused(v.verify(token, pki.rogue.certificate), 'ERR_CLIENT_CERT_REQUIRED', /chain/)
  })

  it('needs the intermediate to build the path to the root', async () => {
    const v = make({ intermediates: undefined })
    const token = await issuer.mint(a)
    await refused(v.verify(token, a.certificate), 'ERR_CLIENT_CERT_REQUIRED', /chain/)
    const intermediate = pki.intermediate.certificate
    expect((await v.verify(token, a.certificate, [intermediate])).claims.sub).toBe(a.spiffeId)
  })

  it('rejects a wrong aud', async () => {
    const token = await issuer.mint(a, { claims: { aud: 'https://other.example' } })
    await refused(verifier.verify(token, a.certificate), 'ERR_TOKEN_INVALID', /aud/)
  })

  it('rejects a wrong iss', async () => {
    const token = await issuer.mint(a, { claims: { iss: 'https://evil.example' } })
    await refused(verifier.verify(token, a.certificate), 'ERR_TOKEN_INVALID', /iss/)
  })

  it('rejects an expired token, allowing a small leeway', async () => {
    const expired = await issuer.mint(a, { expiresIn: -31 })
    await refused(verifier.verify(expired, a.certificate), 'ERR_TOKEN_INVALID', /expired/)
    const justExpired = await issuer.mint(a, { expiresIn: -5 })
    expect((await verifier.verify(justExpired, a.certificate)).claims.sub).toBe(a.spiffeId)
  })

  it('rejects a token that is not yet valid', async () => {
    const nbf = Math.floor(Date.now() / 1000) + 120
    const token = await issuer.mint(a, { claims: { nbf } })
    await refused(verifier.verify(token, a.certificate), 'ERR_TOKEN_INVALID', /nbf/)
  })

  it('rejects a token whose typ is not at+jwt', async () => {
    const token = await issuer.mint(a, { header: { typ: 'JWT' } })
    await refused(verifier.verify(token, a.certificate), 'ERR_TOKEN_INVALID', /typ/)
  })

  it('rejects alg none', async () => {
    const now = Math.floor(Date.now() / 1000)
    const token = unsigned(
      { alg: 'none', typ: 'at+jwt', kid: issuer.key.kid },
      {
        iss: issuer.url,
        aud: issuer.url,
        sub: a.spiffeId,
        client_id: a.spiffeId,
        iat: now,
        exp: now + 60,
        jti: 'x',
        cnf: { 'x5t#S256': a.thumbprint },
      },
    )
    await refused(verifier.verify(token, a.certificate), 'ERR_TOKEN_INVALID', /alg/)
  })

  it('rejects an HS256 token signed with the public key as the secret', async () => {
    const jwk = issuer.key.publicJwk
    const secrets = [new TextEncoder().encode(JSON.stringify(jwk)), base64url.decode(jwk.x!)]
    for (const secret of secrets) {
      const token = await new SignJWT({
        client_id: a.spiffeId,
        jti: 'x',
        cnf: { 'x5t#S256': a.thumbprint },
      })
        .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: issuer.key.kid })
        .setIssuer(issuer.url)
        .setAudience(issuer.url)
        .setSubject(a.spiffeId)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(secret)
      await refused(verifier.verify(token, a.certificate), 'ERR_TOKEN_INVALID', /alg/)
    }
  })

  it('rejects a tampered signature and a tampered payload', async () => {
    const [h, p, s] = (await issuer.mint(a)).split('.') as [string, string, string]
    const sig = base64url.decode(s)
    sig[10]! ^= 1
    const badSig = `${h}.${p}.${base64url.encode(sig)}`
    await refused(verifier.verify(badSig, a.certificate), 'ERR_TOKEN_INVALID', /signature/)
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p)))
    const forged = base64url.encode(
      JSON.stringify({ ...claims, cnf: { 'x5t#S256': b.thumbprint } }),
    )
    await refused(
      verifier.verify(`${h}.${forged}.${s}`, b.certificate),
      'ERR_TOKEN_INVALID',
      /signature/,
    )
    // an HMAC "signature" over the original input is just another tampered signature
    const mac = createHmac('sha256', 'k').update(`${h}.${p}`).digest('base64url')
    await refused(verifier.verify(`${h}.${p}.${mac}`, a.certificate), 'ERR_TOKEN_INVALID')
  })

  it('rejects a token signed by a key that is not in the JWKS (unknown kid)', async () => {
    const stranger = await issuer.createKey(false)
    const token = await issuer.mint(a, { key: stranger })
    await refused(verifier.verify(token, a.certificate), 'ERR_TOKEN_INVALID', /kid/)
  })

  it('rejects a token without cnf, or without the other required claims', async () => {
    for (const claim of ['cnf', 'client_id', 'jti', 'exp', 'sub']) {
      const token = await issuer.mint(a, { claims: { [claim]: undefined } })
      await refused(verifier.verify(token, a.certificate), 'ERR_TOKEN_INVALID')
    }
    const noX5t = await issuer.mint(a, { claims: { cnf: { jkt: 'abc' } } })
    await refused(verifier.verify(noX5t, a.certificate), 'ERR_TOKEN_INVALID', /x5t/)
  })

  it('refuses unsafe options with TypeError', () => {
    expect(() => createVerifier({ ...options, algorithms: ['HS256'] })).toThrow(TypeError)
    expect(() => createVerifier({ ...options, algorithms: ['none'] })).toThrow(TypeError)
    expect(() => createVerifier({ ...options, algorithms: [] })).toThrow(TypeError)
    expect(() => createVerifier({ ...options, jwksUri: 'http://127.0.0.1/jwks' })).toThrow(
      TypeError,
    )
    expect(() => createVerifier({ ...options, trustAnchors: '' })).toThrow(TypeError)
    expect(() => createVerifier({ ...options, trustAnchors: a.certPem })).toThrow(TypeError)
    expect(() => createVerifier({ ...options, clockToleranceSec: 3600 })).toThrow(TypeError)
    expect(() => createVerifier({ ...options, introspection: {} })).toThrow(TypeError)
  })
})

describe('JWKS fetching', () => {
  it('refetches on an unknown kid, at most once per cooldown', async () => {
    const v = make({ jwks: { cooldownMs: 400 } })
    const start = issuer.jwksFetches
    await v.verify(await issuer.mint(a), a.certificate)
    expect(issuer.jwksFetches - start).toBe(1)

    const rotated = await issuer.createKey(true)
    const fresh = await issuer.mint(a, { key: rotated })
    const bogus = await Promise.all(
      Array.from({ length: 5 }, async () => issuer.mint(a, { key: await issuer.createKey(false) })),
    )
    // inside the cooldown: neither the new kid nor random ones cause a fetch
    await refused(v.verify(fresh, a.certificate), 'ERR_TOKEN_INVALID', /kid/)
    await Promise.all(bogus.map((t) => refused(v.verify(t, a.certificate), 'ERR_TOKEN_INVALID')))
    expect(issuer.jwksFetches - start).toBe(1)

    await new Promise((r) => setTimeout(r, 450))
    // after it: concurrent unknown kids share one fetch, which brings the new key
    const results = await Promise.allSettled(
      [fresh, ...bogus].map((t) => v.verify(t, a.certificate)),
    )
    expect(results[0]!.status).toBe('fulfilled')
    expect(results.slice(1).every((r) => r.status === 'rejected')).toBe(true)
    expect(issuer.jwksFetches - start).toBe(2)
    await Promise.all(bogus.map((t) => refused(v.verify(t, a.certificate), 'ERR_TOKEN_INVALID')))
    expect(issuer.jwksFetches - start).toBe(2)
  })

  it('backs off after a failed fetch instead of retrying on every token', async () => {
    const v = make({ jwksUri: `${issuer.url}/missing/jwks.json`, jwks: { failureBackoffMs: 300 } })
    const token = await issuer.mint(a)
    for (let i = 0; i < 5; i++) {
      await refused(v.verify(token, a.certificate), 'ERR_VERIFIER_UNAVAILABLE')
    }
    expect(issuer.hits.get('/missing/jwks.json')).toBe(1)
    await new Promise((r) => setTimeout(r, 350))
    await refused(v.verify(token, a.certificate), 'ERR_VERIFIER_UNAVAILABLE')
    expect(issuer.hits.get('/missing/jwks.json')).toBe(2)
  })

  it('fails closed, as unavailable, when the JWKS cannot be fetched or is not trusted', async () => {
    const token = await issuer.mint(a)
    const gone = make({ jwksUri: 'https://127.0.0.1:1/.well-known/jwks.json' })
    await refused(gone.verify(token, a.certificate), 'ERR_VERIFIER_UNAVAILABLE')
    // pinned anchors: with another root, the issuer's TLS certificate is not trusted, so the
    // JWKS is not fetched even though the client certificate chains to that root
    const rogueRoot = pki.rogue.chainPem.slice(pki.rogue.certPem.length)
    const pinned = make({ trustAnchors: rogueRoot, intermediates: undefined })
    await refused(
      pinned.verify(await issuer.mint(pki.rogue), pki.rogue.certificate),
      'ERR_VERIFIER_UNAVAILABLE',
    )
  })
})

describe('online mode (introspection over mTLS)', () => {
  it('rejects a token whose certificate was revoked before its exp', async () => {
    const c = pki.leaf('c')
    const rs = pki.leaf('rs')
    const online = make({ introspection: { cert: rs.chainPem, key: rs.keyPem, cacheTtlMs: 200 } })
    const offline = verifier
    const token = await issuer.mint(c, { expiresIn: 600 })
    const before = issuer.introspections
    await online.verify(token, c.certificate)
    await online.verify(token, c.certificate)
    expect(issuer.introspections - before).toBe(1) // cached

    issuer.revoked.add(c.thumbprint)
    await new Promise((r) => setTimeout(r, 250))
    await refused(online.verify(token, c.certificate), 'ERR_TOKEN_INVALID', /active/)
    // offline verification cannot know before exp
    expect((await offline.verify(token, c.certificate)).claims.sub).toBe(c.spiffeId)
  })

  it('does not ask the issuer about tokens that fail locally', async () => {
    const rs = pki.leaf('rs')
    const online = make({ introspection: { cert: rs.chainPem, key: rs.keyPem } })
    const before = issuer.introspections
    await refused(online.verify(await issuer.mint(a), b.certificate), 'ERR_TOKEN_BINDING_MISMATCH')
    expect(issuer.introspections).toBe(before)
  })

  it('fails closed when introspection is refused (no client certificate accepted)', async () => {
    const online = make({ introspection: { cert: pki.rogue.chainPem, key: pki.rogue.keyPem } })
    await refused(online.verify(await issuer.mint(a), a.certificate), 'ERR_VERIFIER_UNAVAILABLE')
  })
})
