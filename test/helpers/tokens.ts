import { X509Certificate, createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createLocalJWKSet,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type ProtectedHeaderParameters,
} from 'jose'
import type { Agent } from 'undici'
import { expect } from 'vitest'
import { openssl } from './openssl.js'
import type { ApiResponse, TestServer } from './server.js'

export type Cred = { certPem: string; keyPem: string }

/** Base64url SHA-256 of the certificate's DER, computed here, independently of src/. */
export function thumbprintOf(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('base64url')
}

export function notAfterSeconds(certPem: string): number {
  return Math.floor(new Date(new X509Certificate(certPem).validTo).getTime() / 1000)
}

/** POST /oauth/token (or another OAuth endpoint) with a form, over one agent or one credential. */
export function oauth(
  s: TestServer,
  path: string,
  who: Agent | Cred | undefined,
  form: Record<string, string>,
  headers?: Record<string, string>,
): Promise<ApiResponse> {
  const via = who === undefined ? {} : 'certPem' in who ? { as: who } : { agent: who }
  return s.call('POST', path, { ...via, form, headers })
}

export const token = (
  s: TestServer,
  who: Agent | Cred | undefined,
  form: Record<string, string> = { grant_type: 'client_credentials' },
) => oauth(s, '/oauth/token', who, form)

export const refresh = (s: TestServer, who: Agent | Cred | undefined, refreshToken: string) =>
  oauth(s, '/oauth/token', who, { grant_type: 'refresh_token', refresh_token: refreshToken })

export const introspect = (s: TestServer, who: Agent | Cred | undefined, t: string) =>
  oauth(s, '/oauth/introspect', who, { token: t })

export const revoke = (s: TestServer, who: Agent | Cred | undefined, t: string) =>
  oauth(s, '/oauth/revoke', who, { token: t })

/** A successful token response, asserted. */
export async function grant(
  s: TestServer,
  who: Agent | Cred,
  form?: Record<string, string>,
): Promise<{ access_token: string; refresh_token: string; expires_in: number }> {
  const r = await token(s, who, form)
  expect(r.status, r.text).toBe(200)
  return r.body
}

/** Asserts an RFC 6749 §5.2 error: JSON, no-store, only the registered members. */
export function expectOAuthError(r: ApiResponse, status: number, error: string): void {
  expect(r.status, r.text).toBe(status)
  expect(String(r.headers['content-type'])).toMatch(/^application\/json/)
  expect(r.headers['cache-control']).toBe('no-store')
  expect(r.body.error).toBe(error)
  for (const k of Object.keys(r.body))
    expect(['error', 'error_description', 'error_uri']).toContain(k)
  if (r.body.error_description !== undefined)
    expect(r.body.error_description).toMatch(/^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/)
}

export async function fetchJwks(s: TestServer): Promise<JSONWebKeySet> {
  const r = await s.call('GET', '/.well-known/jwks.json')
  expect(r.status).toBe(200)
  return r.body
}

/** Verifies an access token with jose against the JWKS served over HTTPS right now. */
export async function verifyWithServedJwks(
  s: TestServer,
  accessToken: string,
  currentDate?: Date,
): Promise<{
  payload: JWTPayload & Record<string, any>
  protectedHeader: ProtectedHeaderParameters
}> {
  const jwks = createLocalJWKSet(await fetchJwks(s))
  return jwtVerify(accessToken, jwks, {
    issuer: s.config.tokens.issuer,
    typ: 'at+jwt',
    algorithms: ['ES256'],
    ...(currentDate ? { currentDate } : {}),
  })
}

export function kidOf(jwt: string): string {
  return JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()).kid
}

/** A certificate and key with a SPIFFE ID from an unrelated, self-signed CA. */
export function foreignCredential(spiffeId: string): Cred {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-foreign-'))
  try {
    const r = openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/O=example.org',
      '-addext',
      `subjectAltName=URI:${spiffeId}`,
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ])
    if (r.code !== 0) throw new Error(r.out)
    return {
      certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'),
      keyPem: readFileSync(join(dir, 'key.pem'), 'utf8'),
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return out
}

export async function revokeCertificate(
  s: TestServer,
  serial: string,
  reason?: string,
): Promise<void> {
  const r = await s.call('POST', `/v1/certificates/${serial}/revoke`, {
    as: s.admin,
    json: reason ? { reason } : {},
  })
  expect(r.status, r.text).toBe(200)
}

export async function auditEvents(s: TestServer, action: string) {
  return s.store.audit.list({ action, limit: 10_000 })
}
