import { makeCsr } from '../helpers/openssl.js'
import { ocspRequest } from '../helpers/ocsp.js'
import type { Credential, TestServer } from '../helpers/server.js'

/*
 * Every route of the app, by access class, with a request its rightful caller would send. The
 * table is checked against the router (test/security/routes.test.ts): a route without a row, or
 * a row for a route that is gone, fails the suite.
 */

export type Access = 'public' | 'admin' | 'mtls' | 'join-token'

export interface RouteContext {
  readonly workload: Credential & { entryId: string }
  readonly joinToken: () => Promise<string>
  /** A certificate the revocation row may revoke (a fresh one each call). */
  readonly revocable: () => Promise<string>
  readonly refreshToken: string
  readonly accessToken: string
  /** The issuing CA's key id (hex of its subject key identifier). */
  readonly caKeyId: string
  /** The lineage of `workload`. */
  readonly lineageId: string
  /** A lineage the lineage revocation row may revoke (a fresh one each call). */
  readonly revocableLineage: () => Promise<string>
  /** An OCSP request (DER, no nonce) for `workload`'s certificate, made by openssl. */
  readonly ocspRequest: Buffer
  /** The path of a tile the audit log serves now (the first level-0 tile). */
  readonly auditTile: () => Promise<string>
}

export interface RouteRequest {
  readonly path: string
  readonly json?: unknown
  readonly form?: Record<string, string>
  readonly body?: string | Buffer
  readonly headers?: Record<string, string>
}

export interface RouteRow {
  readonly access: Access
  readonly request: (ctx: RouteContext) => Promise<RouteRequest> | RouteRequest
}

const W = 'spiffe://example.org/routes/workload'
let n = 0

export const ROUTES: Record<string, RouteRow> = {
  'GET /healthz': { access: 'public', request: () => ({ path: '/healthz' }) },
  'GET /v1/bundle': { access: 'public', request: () => ({ path: '/v1/bundle' }) },
  'GET /v1/crl': { access: 'public', request: () => ({ path: '/v1/crl' }) },
  'GET /.well-known/jwks.json': {
    access: 'public',
    request: () => ({ path: '/.well-known/jwks.json' }),
  },
  'GET /.well-known/oauth-authorization-server': {
    access: 'public',
    request: () => ({ path: '/.well-known/oauth-authorization-server' }),
  },
  'POST /v1/enroll': {
    access: 'join-token',
    // spiffe_id (ignored with a join token) makes the body whole for an OIDC-shaped bearer too:
    // a JWT in the token's place is then refused for what it is (401), not for a missing member.
    request: async (c) => ({
      path: '/v1/enroll',
      headers: { authorization: `Bearer ${await c.joinToken()}` },
      json: { spiffe_id: W, csr: makeCsr({ san: `URI:${W}` }).csrPem },
    }),
  },
  'POST /v1/renew': {
    access: 'mtls',
    request: () => ({ path: '/v1/renew', json: { csr: makeCsr({ san: `URI:${W}` }).csrPem } }),
  },
  'POST /v1/entries': {
    access: 'admin',
    request: () => ({ path: '/v1/entries', json: { spiffe_id: `${W}/new/${++n}` } }),
  },
  'GET /v1/entries': { access: 'admin', request: () => ({ path: '/v1/entries' }) },
  'GET /v1/entries/:id': {
    access: 'admin',
    request: (c) => ({ path: `/v1/entries/${c.workload.entryId}` }),
  },
  'PATCH /v1/entries/:id': {
    access: 'admin',
    request: (c) => ({ path: `/v1/entries/${c.workload.entryId}`, json: { ttl: '2h' } }),
  },
  'POST /v1/entries/:id/join-tokens': {
    access: 'admin',
    request: (c) => ({ path: `/v1/entries/${c.workload.entryId}/join-tokens`, json: {} }),
  },
  'GET /v1/certificates': { access: 'admin', request: () => ({ path: '/v1/certificates' }) },
  'GET /v1/certificates/:serial': {
    access: 'admin',
    request: (c) => ({ path: `/v1/certificates/${c.workload.serial}` }),
  },
  'POST /v1/certificates/:serial/revoke': {
    access: 'admin',
    request: async (c) => ({
      path: `/v1/certificates/${await c.revocable()}/revoke`,
      json: { reason: 'superseded' },
    }),
  },
  'POST /oauth/token': {
    access: 'mtls',
    request: () => ({ path: '/oauth/token', form: { grant_type: 'client_credentials' } }),
  },
  'POST /oauth/introspect': {
    access: 'mtls',
    request: (c) => ({ path: '/oauth/introspect', form: { token: c.accessToken } }),
  },
  'POST /oauth/revoke': {
    access: 'mtls',
    request: () => ({ path: '/oauth/revoke', form: { token: 'A'.repeat(59) } }),
  },
  'GET /readyz': { access: 'public', request: () => ({ path: '/readyz' }) },
  'GET /v1/ca/:file': {
    access: 'public',
    request: (c) => ({ path: `/v1/ca/${c.caKeyId}.crt` }),
  },
  'GET /v1/ca/:keyId/crl': {
    access: 'public',
    request: (c) => ({ path: `/v1/ca/${c.caKeyId}/crl` }),
  },
  'POST /v1/ocsp': {
    access: 'public',
    request: (c) => ({
      path: '/v1/ocsp',
      body: c.ocspRequest,
      headers: { 'content-type': 'application/ocsp-request' },
    }),
  },
  // RFC 6960 Appendix A.1: GET {url}/{url-encoding of base64 encoding of the DER request}.
  'GET /v1/ocsp/*': {
    access: 'public',
    request: (c) => ({ path: `/v1/ocsp/${encodeURIComponent(c.ocspRequest.toString('base64'))}` }),
  },
  'GET /v1/lineages/:id': {
    access: 'admin',
    request: (c) => ({ path: `/v1/lineages/${c.lineageId}` }),
  },
  'POST /v1/lineages/:id/revoke': {
    access: 'admin',
    request: async (c) => ({
      path: `/v1/lineages/${await c.revocableLineage()}/revoke`,
      json: { reason: 'superseded' },
    }),
  },
  'GET /v1/audit/checkpoint': {
    access: 'public',
    request: () => ({ path: '/v1/audit/checkpoint' }),
  },
  'GET /v1/audit/key': { access: 'public', request: () => ({ path: '/v1/audit/key' }) },
  'GET /v1/audit/tile/*': {
    access: 'public',
    request: async (c) => ({ path: await c.auditTile() }),
  },
  'GET /.well-known/est/cacerts': {
    access: 'public',
    request: () => ({ path: '/.well-known/est/cacerts' }),
  },
  'GET /.well-known/est/csrattrs': {
    access: 'public',
    request: () => ({ path: '/.well-known/est/csrattrs' }),
  },
  // The join token is the workload entry's: the CSR names that entry's SPIFFE ID.
  'POST /.well-known/est/simpleenroll': {
    access: 'join-token',
    request: async (c) => ({
      path: '/.well-known/est/simpleenroll',
      headers: {
        authorization: `Bearer ${await c.joinToken()}`,
        'content-type': 'application/pkcs10',
      },
      body: pkcs10(W),
    }),
  },
  'POST /.well-known/est/simplereenroll': {
    access: 'mtls',
    request: () => ({
      path: '/.well-known/est/simplereenroll',
      headers: { 'content-type': 'application/pkcs10' },
      body: pkcs10(W),
    }),
  },
}

/** RFC 7030 §4.2: base64 of the DER CSR. */
function pkcs10(spiffeId: string): string {
  return makeCsr({ san: `URI:${spiffeId}` }).csrPem.replace(/-----[A-Z ]+-----|\s/g, '')
}

export const routeKey = (method: string, path: string) => `${method} ${path}`

/**
 * The context of the rows for `workload` of `s`, with tokens `tokens` (bound to `workload`,
 * or to another certificate where the point is a token presented by the wrong one); fresh
 * certificates and lineages to revoke are enrolled under `prefix`.
 */
export async function routeContext(
  s: TestServer,
  workload: Credential & { entryId: string },
  tokens: { access_token: string; refresh_token: string },
  prefix: string,
): Promise<RouteContext> {
  const revocable = () => s.enroll(`${prefix}/revocable/${++n}`)
  const lineageOf = async (serial: string) => {
    const r = await s.call('GET', `/v1/certificates/${serial}`, { as: s.admin })
    if (r.status !== 200 || typeof r.body.lineage_id !== 'string')
      throw new Error(`no lineage for ${serial}: ${r.status} ${r.text}`)
    return r.body.lineage_id as string
  }
  return {
    workload,
    joinToken: () => s.joinToken(workload.entryId),
    revocable: async () => (await revocable()).serial,
    refreshToken: tokens.refresh_token,
    accessToken: tokens.access_token,
    caKeyId: s.running.ca.current.keyId,
    lineageId: await lineageOf(workload.serial),
    revocableLineage: async () => lineageOf((await revocable()).serial),
    ocspRequest: ocspRequest(workload.certPem, s.intermediatePem, { nonce: false }),
    auditTile: async () => {
      const r = await s.call('GET', '/v1/audit/checkpoint')
      if (r.status !== 200) throw new Error(`no checkpoint: ${r.status} ${r.text}`)
      return firstTile(r.text)
    },
  }
}

/** The first level-0 tile of the tree a checkpoint signs (c2sp.org/tlog-tiles: partial below 256). */
export function firstTile(checkpointNote: string): string {
  const size = Number(checkpointNote.split('\n')[1])
  return size >= 256 ? '/v1/audit/tile/0/000' : `/v1/audit/tile/0/000.p/${size}`
}
