import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto'
import {
  SignJWT,
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeProtectedHeader,
  jwtVerify,
  type JWK,
} from 'jose'
import { describe, expect, it } from 'vitest'
import { importJwks, signJwt, verifyJwt, type JwsAlg } from '../../src/tokens/jws.js'

/** The fast node:crypto JWS path against jose, the independent implementation, for every alg. */

const ISSUER = 'https://ca.example.org'
const NOW = new Date('2030-01-01T00:00:00Z')
const T = Math.floor(NOW.getTime() / 1000)

function keyPair(alg: JwsAlg): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (alg) {
    case 'ES256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' })
    case 'ES384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' })
    case 'EdDSA':
      return generateKeyPairSync('ed25519')
    case 'RS256':
      return generateKeyPairSync('rsa', { modulusLength: 2048 })
  }
}

const ALGS: JwsAlg[] = ['ES256', 'ES384', 'EdDSA', 'RS256']
const keys = await Promise.all(
  ALGS.map(async (alg) => {
    const pair = keyPair(alg)
    const jwk = pair.publicKey.export({ format: 'jwk' }) as JWK
    const kid = await calculateJwkThumbprint(jwk, 'sha256')
    return { alg, kid, ...pair, jwk: { ...jwk, kid, alg, use: 'sig' } as JWK }
  }),
)
const jwks = { keys: keys.map((k) => k.jwk) }
const verification = importJwks(jwks)
const options = { issuer: ISSUER, typ: 'at+jwt', algorithms: ALGS, currentDate: NOW }

const claims = (extra: Record<string, unknown> = {}) => ({
  client_id: 'spiffe://example.org/w',
  cnf: { 'x5t#S256': 'abc' },
  iss: ISSUER,
  sub: 'spiffe://example.org/w',
  aud: ISSUER,
  iat: T,
  exp: T + 300,
  jti: 'j1',
  ...extra,
})

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

describe('fast JWS (node:crypto) and jose agree', () => {
  for (const k of keys) {
    describe(k.alg, () => {
      it('its tokens verify with jose, with the same header and claims', async () => {
        const token = signJwt({ alg: k.alg, typ: 'at+jwt', kid: k.kid }, claims(), k.privateKey)
        const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), {
          issuer: ISSUER,
          typ: 'at+jwt',
          algorithms: [k.alg],
          currentDate: NOW,
        })
        expect(protectedHeader).toEqual({ alg: k.alg, typ: 'at+jwt', kid: k.kid })
        expect(payload).toEqual(claims())
      })

      it("jose's tokens verify with it", async () => {
        const token = await new SignJWT(claims())
          .setProtectedHeader({ alg: k.alg, typ: 'at+jwt', kid: k.kid })
          .sign(k.privateKey)
        const r = verifyJwt(token, verification, options)
        expect(r).toEqual({ ok: true, payload: claims(), kid: k.kid })
        // Also as a media type with another case (RFC 7515 §4.1.9), like jose accepts.
        const typed = await new SignJWT(claims())
          .setProtectedHeader({ alg: k.alg, typ: 'application/AT+JWT', kid: k.kid })
          .sign(k.privateKey)
        expect(verifyJwt(typed, verification, options).ok).toBe(true)
      })

      it('refuses a tampered signature, header or payload', () => {
        const token = signJwt({ alg: k.alg, typ: 'at+jwt', kid: k.kid }, claims(), k.privateKey)
        const [h, p, s] = token.split('.') as [string, string, string]
        const sig = Buffer.from(s, 'base64url')
        sig[sig.length >> 1]! ^= 1
        const tampered = [
          `${h}.${p}.${sig.toString('base64url')}`,
          `${b64({ alg: k.alg, typ: 'at+jwt', kid: k.kid, x: 1 })}.${p}.${s}`,
          `${h}.${b64(claims({ sub: 'spiffe://example.org/other' }))}.${s}`,
          `${h}.${p}.`,
          `${h}.${p}.${s}A`,
          `${h}.${p}`,
        ]
        for (const t of tampered) expect(verifyJwt(t, verification, options).ok, t).toBe(false)
      })

      it('refuses a key of another algorithm under the same kid', () => {
        const other = keys.find((o) => o.alg !== k.alg)!
        const token = signJwt(
          { alg: other.alg, typ: 'at+jwt', kid: k.kid },
          claims(),
          other.privateKey,
        )
        expect(verifyJwt(token, verification, options)).toEqual({
          ok: false,
          reason: 'no matching key',
        })
      })

      it('signing refuses a key that does not fit the algorithm', () => {
        const other = keys.find((o) => o.alg !== k.alg)!
        expect(() => signJwt({ alg: k.alg }, claims(), other.privateKey)).toThrow(TypeError)
        expect(() => signJwt({ alg: k.alg }, claims(), k.publicKey)).toThrow(TypeError)
      })
    })
  }
})

describe('fast JWS refuses what jose refuses', () => {
  const es = keys[0]!
  const good = (extra: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
    signJwt(
      { alg: 'ES256', typ: 'at+jwt', kid: es.kid, ...header } as never,
      claims(extra),
      es.privateKey,
    )
  const reason = (t: string, o: Partial<typeof options> = {}) => {
    const r = verifyJwt(t, verification, { ...options, ...o })
    return r.ok ? 'ok' : r.reason
  }
  const joseRefuses = async (t: string) =>
    expect(
      jwtVerify(t, createLocalJWKSet(jwks), { ...options, algorithms: [...ALGS] }),
    ).rejects.toThrow()

  it('alg none', async () => {
    const t = `${b64({ alg: 'none', typ: 'at+jwt' })}.${b64(claims())}.`
    expect(reason(t)).toBe('"alg" not allowed')
    await joseRefuses(t)
  })

  it('HS256 signed with the public key as the HMAC secret', async () => {
    for (const secret of [
      es.publicKey.export({ format: 'pem', type: 'spki' }),
      Buffer.from(JSON.stringify(es.jwk)),
    ]) {
      const input = `${b64({ alg: 'HS256', typ: 'at+jwt', kid: es.kid })}.${b64(claims())}`
      const t = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
      expect(reason(t)).toBe('"alg" not allowed')
      await joseRefuses(t)
    }
  })

  it('an algorithm outside the allowed list', () => {
    expect(reason(good(), { algorithms: ['EdDSA'] })).toBe('"alg" not allowed')
  })

  it('a wrong or missing typ', async () => {
    for (const t of [good({}, { typ: 'JWT' }), good({}, { typ: undefined })]) {
      expect(reason(t)).toBe('unexpected "typ"')
      await joseRefuses(t)
    }
  })

  it('another or missing issuer', async () => {
    for (const t of [good({ iss: 'https://evil.example' }), good({ iss: undefined })]) {
      expect(reason(t)).toBe('unexpected "iss"')
      await joseRefuses(t)
    }
  })

  it('expired (exp at the clock) and not yet valid (nbf after it), by the given clock', async () => {
    expect(reason(good({ exp: T }))).toBe('expired ("exp")')
    await joseRefuses(good({ exp: T }))
    expect(reason(good({ exp: T + 1 }))).toBe('ok')
    expect(reason(good({ nbf: T + 1 }))).toBe('not yet valid ("nbf")')
    await joseRefuses(good({ nbf: T + 1 }))
    expect(reason(good({ nbf: T }))).toBe('ok')
    expect(reason(good({ exp: T }), { currentDate: new Date(NOW.getTime() - 1000) })).toBe('ok')
  })

  it('non-numeric time claims', async () => {
    for (const claim of ['iat', 'nbf', 'exp']) {
      const t = good({ [claim]: String(T + 100) })
      expect(reason(t)).toBe(`"${claim}" must be a number`)
      await joseRefuses(t)
    }
  })

  it('a crit header, an unknown kid, a claims set that is not an object', async () => {
    expect(reason(good({}, { crit: ['exp'], exp: 1 }))).toBe('unsupported "crit" header')
    expect(reason(good({}, { kid: 'nope' }))).toBe('no matching key')
    const input = `${b64({ alg: 'ES256', typ: 'at+jwt', kid: es.kid })}.${b64([1, 2])}`
    const t = signJwt(
      { alg: 'ES256', typ: 'at+jwt', kid: es.kid },
      [1, 2] as unknown as object,
      es.privateKey,
    )
    expect(t.startsWith(input)).toBe(true)
    expect(reason(t)).toBe('the claims set is not a JSON object')
    await joseRefuses(t)
  })

  it('a token without kid is tried against every key of its algorithm', () => {
    const t = good({}, { kid: undefined })
    expect(decodeProtectedHeader(t).kid).toBeUndefined()
    expect(reason(t)).toBe('ok')
  })
})

describe('importJwks', () => {
  it('skips keys of other uses, unknown algorithms and small RSA; never yields a private key', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey
    const es = keys[0]!
    const priv = es.privateKey.export({ format: 'jwk' }) as JWK
    const imported = importJwks({
      keys: [
        { ...es.jwk, use: 'enc' },
        { ...es.jwk, alg: 'ES512' },
        { ...es.jwk, alg: undefined },
        { ...(small.export({ format: 'jwk' }) as JWK), alg: 'RS256', kid: 'small' },
        { ...priv, kid: 'p', alg: 'ES256' },
      ],
    })
    expect(imported.map((k) => k.kid)).toEqual(['p'])
    expect(imported[0]!.key.type).toBe('public')
  })
})
