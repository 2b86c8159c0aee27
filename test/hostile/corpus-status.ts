import { nothing, q } from './cases.js'
import type { CaseContext, HostileCase, RouteCorpus } from './harness.js'
import { ocspGetCases, ocspPostCases } from './ocsp.js'

/*
 * Corpus rows of the public status routes: readiness, CA certificates and CRLs by key id
 * (RFC 5280 caIssuers and cRLDistributionPoints URLs), OCSP (RFC 6960) and the audit log's
 * checkpoint, key and tiles (c2sp.org/tlog-tiles). Nobody authenticates; a name that is not
 * one is a clear 404 or 400, never a file of the data directory or a 5xx.
 */

const get = (name: string, path: (c: CaseContext) => string, mayAccept = false): HostileCase => ({
  name,
  request: (c) => q(path(c)),
  ...(mayAccept && { mayAccept }),
})

/** Names a CA file route must not resolve (path traversal, NUL, non-hex, unknown key ids). */
const BAD_CA_NAMES = [
  'root.crt',
  'kek.key',
  'intermediate.pem',
  '.crt',
  'zz.crt',
  '00.crt',
  '%00.crt',
  `${'a'.repeat(5000)}.crt`,
  '..%2fkek.key',
  '..%2f..%2fca%2fintermediate-key.pem',
  '%2e%2e%2f%2e%2e%2fadmin%2fadmin-key.pem',
]

// '..' (or '%2e%2e') is a dot segment: the client's URL parser (WHATWG URL) resolves it to
// /v1/crl before sending, so it never reaches this route.
const BAD_KEY_IDS = ['zz', '0', '00', 'a'.repeat(129), '%00', '..%2f', 'intermediate', '%C3%A9']

/** Tile paths that are none (tlog-tiles: tile/<L>/<N>[.p/<W>], N in x-prefixed groups of 3). */
const BAD_TILES = [
  'x',
  '0/0',
  '0/000.p/0',
  '0/000.p/256',
  '0/000.p/-1',
  '0/x000/001',
  '64/000',
  '-1/000',
  '0/x999/x999/x999/x999/x999/x999/999',
  `0/${'x001/'.repeat(2000)}000`,
  '0/000.p/%00',
  '..%2f..%2fcheckpoint',
  '1/000',
]

export const STATUS_ROWS: readonly RouteCorpus[] = [
  {
    route: 'GET /readyz',
    auth: 'none',
    cases: [nothing, get('a 8 KB query', () => `/readyz?${'a'.repeat(8000)}`, true)],
  },
  {
    route: 'GET /v1/ca/:file',
    auth: 'none',
    path: (c) => `/v1/ca/${c.caKeyId}.crt`,
    cases: [
      nothing,
      get('the intermediate alias', () => '/v1/ca/intermediate.crt', true),
      get('the key id in capitals', (c) => `/v1/ca/${c.caKeyId.toUpperCase()}.crt`, true),
      ...BAD_CA_NAMES.map((n) => get(`file ${n.slice(0, 40)}`, () => `/v1/ca/${n}`)),
      get('a NUL after the key id', (c) => `/v1/ca/${c.caKeyId}.crt%00`),
    ],
  },
  {
    route: 'GET /v1/ca/:keyId/crl',
    auth: 'none',
    path: (c) => `/v1/ca/${c.caKeyId}/crl`,
    cases: [
      nothing,
      ...BAD_KEY_IDS.map((id) => get(`key id ${id.slice(0, 30)}`, () => `/v1/ca/${id}/crl`)),
    ],
  },
  { route: 'POST /v1/ocsp', auth: 'none', cases: ocspPostCases() },
  { route: 'GET /v1/ocsp/*', auth: 'none', path: () => '/v1/ocsp/MAA', cases: ocspGetCases() },
  {
    route: 'GET /v1/audit/checkpoint',
    auth: 'none',
    cases: [nothing, get('a query', () => '/v1/audit/checkpoint?tree_size=-1', true)],
  },
  { route: 'GET /v1/audit/key', auth: 'none', cases: [nothing] },
  {
    route: 'GET /v1/audit/tile/*',
    auth: 'none',
    path: () => '/v1/audit/tile/0/000.p/1',
    cases: BAD_TILES.map((t) => get(`tile ${t.slice(0, 40)}`, () => `/v1/audit/tile/${t}`)),
  },
]
