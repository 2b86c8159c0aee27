import { generateKeyPairSync } from 'node:crypto'
import fc from 'fast-check'
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify, type JWK } from 'jose'
import { describe, expect, it } from 'vitest'
import {
  checkJwtClaimsOfAuthenticatedToken,
  importJwks,
  signJwt,
  verifyJwt,
} from '@certbound/verifier/jws'

/**
 * The verifier's node:crypto JWT check against jose.jwtVerify, the independent implementation,
 * with the options @certbound/verifier passes (audience list, leeway, required claims): for
 * random claim sets, headers and clocks, both accept or both refuse.
 */

const ISSUER = 'https://ca.example.org'
const AUDIENCE = [ISSUER, 'https://api.example.org']
const REQUIRED = ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'cnf']
const T = 1_900_000_000

const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const publicJwk = pair.publicKey.export({ format: 'jwk' }) as JWK
const kid = await calculateJwkThumbprint(publicJwk, 'sha256')
const jwks = { keys: [{ ...publicJwk, kid, alg: 'ES256', use: 'sig' } as JWK] }
const local = createLocalJWKSet(jwks)
const ours = importJwks(jwks)

/** Mostly the valid value, sometimes one of the others: most runs reach the time checks. */
const mostly = <T>(valid: T, ...others: T[]) =>
  fc.oneof({ arbitrary: fc.constant(valid), weight: 12 }, ...others.map((o) => fc.constant(o)))
// Offsets from the verifying clock: small, so that the boundaries (±leeway) are hit often.
const timeClaim = fc.oneof(
  { arbitrary: fc.integer({ min: -70, max: 70 }), weight: 5 },
  {
    arbitrary: fc.constantFrom(
      -61,
      -60,
      -59,
      -31,
      -30,
      -29,
      -2,
      -1,
      0,
      1,
      2,
      29,
      30,
      31,
      59,
      60,
      61,
    ),
    weight: 5,
  },
  fc.constant(undefined),
  fc.constant<unknown>('soon'),
)
const claimSet = fc.record({
  iss: mostly<string | undefined>(ISSUER, 'https://other.example.org', undefined),
  aud: fc.oneof(
    {
      arbitrary: fc.constantFrom<unknown>(ISSUER, 'https://api.example.org', [ISSUER, 'x']),
      weight: 12,
    },
    fc.constantFrom<unknown>('https://elsewhere', ['x', 'y'], [], undefined, 7),
  ),
  sub: mostly<string | undefined>('spiffe://example.org/w', undefined),
  client_id: mostly<string | undefined>('spiffe://example.org/w', undefined),
  jti: mostly<string | undefined>('j', undefined),
  cnf: mostly<unknown>({ 'x5t#S256': 'abc' }, undefined),
  iat: timeClaim,
  nbf: fc.oneof(timeClaim, fc.constant(undefined)),
  exp: timeClaim,
})
const typ = mostly<string | undefined>('at+jwt', 'application/at+jwt', 'AT+JWT', 'JWT', undefined)

async function joseAccepts(token: string, now: number, leeway: number): Promise<boolean> {
  try {
    await jwtVerify(token, local, {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['ES256'],
      typ: 'at+jwt',
      clockTolerance: leeway,
      currentDate: new Date(now * 1000),
      requiredClaims: REQUIRED,
    })
    return true
  } catch {
    return false
  }
}

describe('verifyJwt with the verifier options agrees with jose.jwtVerify', () => {
  it('on random claims, typ, clocks and leeways', async () => {
    await fc.assert(
      fc.asyncProperty(
        claimSet,
        typ,
        fc.integer({ min: T - 100, max: T + 100 }),
        fc.constantFrom(0, 1, 30, 60),
        async (claims, t, now, leeway) => {
          const payload = Object.fromEntries(
            Object.entries(claims)
              .filter(([, v]) => v !== undefined)
              .map(([k, v]) => [
                k,
                ['iat', 'nbf', 'exp'].includes(k) && typeof v === 'number' ? now + v : v,
              ]),
          )
          const header = { alg: 'ES256' as const, kid, ...(t ? { typ: t } : {}) }
          const token = signJwt(header, payload, pair.privateKey)
          const options = {
            algorithms: ['ES256'],
            issuer: ISSUER,
            audience: AUDIENCE,
            typ: 'at+jwt',
            currentDate: new Date(now * 1000),
            clockToleranceSec: leeway,
            requiredClaims: REQUIRED,
          }
          const mine = verifyJwt(token, ours, options)
          expect(mine.ok).toBe(await joseAccepts(token, now, leeway))
          // Introspection's path for bytes it knows it signed: the same verdict on the claims.
          expect(checkJwtClaimsOfAuthenticatedToken(token, options)).toEqual(mine)
        },
      ),
      { numRuns: 1000 },
    )
  })
})
