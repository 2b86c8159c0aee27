import { makeCsr } from '../helpers/openssl.js'
import type { Credential } from '../helpers/server.js'

/*
 * Every route of the app, by access class, with a request its rightful caller would send. The
 * table is checked against the router (test/security/routes.test.ts): a route without a row, or
 * a row for a route that is gone, fails the suite. Rows marked `later` belong to routes of other
 * issues (OCSP, EST): checked once their route exists.
 */

export type Access = 'public' | 'admin' | 'mtls' | 'join-token'

export interface RouteContext {
  readonly workload: Credential & { entryId: string }
  readonly joinToken: () => Promise<string>
  /** A certificate the revocation row may revoke (a fresh one each call). */
  readonly revocable: () => Promise<string>
  readonly refreshToken: string
  readonly accessToken: string
}

export interface RouteRequest {
  readonly path: string
  readonly json?: unknown
  readonly form?: Record<string, string>
  readonly body?: string
  readonly headers?: Record<string, string>
}

export interface RouteRow {
  readonly access: Access
  readonly request: (ctx: RouteContext) => Promise<RouteRequest> | RouteRequest
  readonly later?: true
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
    request: async (c) => ({
      path: '/v1/enroll',
      headers: { authorization: `Bearer ${await c.joinToken()}` },
      json: { csr: makeCsr({ san: `URI:${W}` }).csrPem },
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
  // Other issues' routes (contract: OCSP, EST), checked once they exist.
  'POST /v1/ocsp': {
    access: 'public',
    later: true,
    request: () => ({
      path: '/v1/ocsp',
      body: '',
      headers: { 'content-type': 'application/ocsp-request' },
    }),
  },
  'GET /v1/ocsp/:request': {
    access: 'public',
    later: true,
    request: () => ({ path: '/v1/ocsp/MAA' }),
  },
  'GET /.well-known/est/cacerts': {
    access: 'public',
    later: true,
    request: () => ({ path: '/.well-known/est/cacerts' }),
  },
  'GET /.well-known/est/csrattrs': {
    access: 'public',
    later: true,
    request: () => ({ path: '/.well-known/est/csrattrs' }),
  },
  'POST /.well-known/est/simpleenroll': {
    access: 'join-token',
    later: true,
    request: async (c) => ({
      path: '/.well-known/est/simpleenroll',
      headers: {
        authorization: `Bearer ${await c.joinToken()}`,
        'content-type': 'application/pkcs10',
      },
      body: pkcs10(`${W}/est`),
    }),
  },
  'POST /.well-known/est/simplereenroll': {
    access: 'mtls',
    later: true,
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
