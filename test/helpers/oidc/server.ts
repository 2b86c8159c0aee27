import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll } from 'vitest'
import { makeCsr } from '../openssl.js'
import type { ApiClient, ApiResponse } from '../server.js'
import type { LoopbackIssuer } from './issuer.js'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** The audience certbound's tests configure for every issuer. */
export const AUDIENCE = 'https://ca.example.org'

/** A `federation.oidc_issuers` item for a loopback issuer (its TLS root as `ca_bundle`). */
export function issuerConfig(name: string, issuer: LoopbackIssuer, extra: object = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-oidc-ca-'))
  dirs.push(dir)
  return {
    name,
    issuer: issuer.url,
    audience: AUDIENCE,
    ca_bundle: issuer.caFile(join(dir, 'issuer-ca.pem')),
    ...extra,
  }
}

/** `POST /v1/enroll` with an OIDC token for `spiffeId` and a fresh openssl CSR naming it. */
export function enrollWithOidc(
  s: ApiClient,
  token: string,
  spiffeId: string,
  body: Record<string, unknown> = {},
): Promise<ApiResponse> {
  const { csrPem } = makeCsr({ san: `URI:${spiffeId}` })
  return s.call('POST', '/v1/enroll', {
    headers: { authorization: `Bearer ${token}` },
    json: { spiffe_id: spiffeId, csr: csrPem, ...body },
  })
}
