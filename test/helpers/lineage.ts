import { X509Certificate, createPrivateKey, randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import { request } from 'undici'
import { expect } from 'vitest'
import type { Clock } from '../../src/clock.js'
import { openssl } from './openssl.js'
import type { ApiResponse, TestServer } from './server.js'
import type { Cred } from './tokens.js'

/** A clock the test moves: the server's checks see `Date.now() + offsetMs` (TLS does not). */
export class ShiftedClock implements Clock {
  offsetMs = 0
  now(): Date {
    return new Date(Date.now() + this.offsetMs)
  }
}

/** `GET /v1/lineages/{id}` of the certificate's lineage, as an admin sees it. */
export async function lineageOf(s: TestServer, serial: string): Promise<any> {
  const shown = await s.call('GET', `/v1/certificates/${serial}`, { as: s.admin })
  expect(shown.status, shown.text).toBe(200)
  const r = await s.call('GET', `/v1/lineages/${shown.body.lineage_id}`, { as: s.admin })
  expect(r.status, r.text).toBe(200)
  return r.body
}

/** serial → state of each generation of the certificate's lineage. */
export async function generationStates(s: TestServer, serial: string) {
  const l = await lineageOf(s, serial)
  return Object.fromEntries(
    (l.generations as { serial: string; state: string }[]).map((g) => [g.serial, g.state]),
  )
}

/** The serials the served CRL lists (lower-case hex), read by openssl. */
export async function crlSerials(s: TestServer): Promise<Set<string>> {
  const res = await request(`${s.url}/v1/crl`, { dispatcher: s.agent() })
  const der = new Uint8Array(await res.body.arrayBuffer())
  const text = openssl(['crl', '-inform', 'DER', '-noout', '-text'], der).out
  return new Set(
    [...text.matchAll(/Serial Number: ([0-9A-Fa-f]+)/g)].map((m) => m[1]!.toLowerCase()),
  )
}

export const cloneAlarms = (s: TestServer) =>
  s.store.audit.list({ action: 'lineage.clone_detected' })

/** Asserts the clone answer of a CA route: 403 problem+json with code clone_suspected. */
export function expectCloneProblem(r: ApiResponse): void {
  expect(r.status, r.text).toBe(403)
  expect(String(r.headers['content-type'])).toMatch(/^application\/problem\+json/)
  expect(r.body.code).toBe('clone_suspected')
  expect(r.body.detail).toMatch(/suspected clone/)
}

/** Asserts the 401 of a retired generation on a CA route. */
export function expectSuperseded(r: ApiResponse): void {
  expect(r.status, r.text).toBe(401)
  expect(r.body.detail).toMatch(/superseded by a newer certificate/)
}

const ALG: Record<string, string> = {
  'ec:prime256v1': 'ES256',
  'ec:secp384r1': 'ES384',
  ed25519: 'EdDSA',
  rsa: 'RS256',
}

/** The JWS alg of a private key, by key type (CONTRACT "Renewal after expiry"). */
export function algOf(keyPem: string): string {
  const key = createPrivateKey(keyPem)
  const curve = key.asymmetricKeyDetails?.namedCurve
  return ALG[curve ? `${key.asymmetricKeyType}:${curve}` : key.asymmetricKeyType!]!
}

/**
 * A proof of possession for a renewal after expiry, signed with jose (an independent signer):
 * `x5c` = the certificate, claims aud/sub/iat/exp/jti; `claims` and `header` override.
 */
export async function renewalProof(
  s: TestServer,
  cred: Cred,
  opts: {
    claims?: Record<string, unknown>
    header?: Record<string, unknown>
    signWith?: string
    lifetimeS?: number
  } = {},
): Promise<string> {
  const cert = new X509Certificate(cred.certPem)
  const sub = cert.subjectAltName!.replace(/^URI:/, '').split(',')[0]
  const iat = Math.floor(Date.now() / 1000)
  const keyPem = opts.signWith ?? cred.keyPem
  const alg = algOf(keyPem)
  return new SignJWT({
    aud: `${s.config.tokens.issuer}/v1/renew`,
    sub,
    iat,
    exp: iat + (opts.lifetimeS ?? 120),
    jti: randomUUID(),
    ...opts.claims,
  })
    .setProtectedHeader({ alg, x5c: [cert.raw.toString('base64')], ...opts.header } as never)
    .sign(createPrivateKey(keyPem))
}

/** `POST /v1/renew` without a client certificate, with a proof. */
export function renewAfterExpiry(
  s: TestServer,
  proof: string,
  csrPem: string,
): Promise<ApiResponse> {
  return s.call('POST', '/v1/renew', {
    headers: { authorization: `Bearer ${proof}` },
    json: { csr: csrPem },
  })
}
