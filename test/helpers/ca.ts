import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { SqlValue } from '../../src/db/driver.js'
import { afterAll, expect } from 'vitest'
import { openssl } from './openssl.js'
import type { ApiResponse, TestServer } from './server.js'

// Temp directories made here are removed when the test file that imported this module ends.
const made: string[] = []
afterAll(() => {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true })
})
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

/** A temp directory holding the given files; returns their paths by name. */
export function tempFiles(files: Record<string, string | Uint8Array>): Record<string, string> {
  const dir = tempDir('certbound-files-')
  const paths: Record<string, string> = {}
  for (const [name, data] of Object.entries(files)) {
    paths[name] = join(dir, name)
    writeFileSync(paths[name]!, data)
  }
  return paths
}

/**
 * `openssl crl -verify` of a DER CRL against the server's root + intermediate (the intermediate
 * signs it); asserts `verify OK` and returns the `-text` dump.
 */
export function verifyCrl(s: TestServer, der: Uint8Array): string {
  const f = tempFiles({ 'crl.der': der, 'chain.pem': s.bundlePem + s.intermediatePem })
  const [crl, chain] = [f['crl.der']!, f['chain.pem']!]
  const r = openssl([
    'crl',
    '-inform',
    'DER',
    '-in',
    crl,
    '-CAfile',
    chain,
    '-verify',
    '-text',
    '-noout',
  ])
  expect(r.code, r.out).toBe(0)
  expect(r.out).toMatch(/verify OK/)
  return r.out
}

/** `openssl x509 -noout -text` of a PEM certificate. */
export function x509Text(certPem: string): string {
  const r = openssl(['x509', '-noout', '-text'], certPem)
  if (r.code !== 0) throw new Error(`openssl x509 failed: ${r.out}`)
  return r.out
}

/** One `openssl x509 -noout -<field>` value, e.g. `serial` → the hex after `serial=`. */
export function x509Field(
  certPem: string,
  field: 'serial' | 'subject' | 'startdate' | 'enddate',
): string {
  const r = openssl(['x509', '-noout', `-${field}`], certPem)
  if (r.code !== 0) throw new Error(`openssl x509 -${field} failed: ${r.out}`)
  return r.out.trim().replace(/^[a-zA-Z]+=\s*/, '')
}

/** The text of the X509v3 extension named `name` in `openssl x509 -text` output (header + value). */
export function extensionBlock(text: string, name: string): string {
  const lines = text.split('\n')
  const i = lines.findIndex((l) => l.trim().startsWith(`${name}:`))
  if (i === -1) return ''
  return `${lines[i]!.trim()}\n${lines[i + 1]?.trim() ?? ''}`
}

/**
 * What a refusal must look like (CONTRACT "Status codes"): the status, RFC 9457
 * problem+json, a non-empty detail; returns the detail for further checks.
 */
export function expectProblem(r: ApiResponse, status: number | number[]): string {
  const statuses = Array.isArray(status) ? status : [status]
  expect(statuses, `status ${r.status}: ${r.text}`).toContain(r.status)
  expect(r.headers['content-type']).toMatch(/^application\/problem\+json/)
  expect(typeof r.body).toBe('object')
  expect(r.body.status).toBe(r.status)
  expect(typeof r.body.detail).toBe('string')
  expect(r.body.detail.length).toBeGreaterThan(10)
  return r.body.detail as string
}

/**
 * Everything a refused request must leave as it was, read through a connection of the test's
 * own (SQLite: read-only, WAL lets it see every committed change; PostgreSQL: a pool).
 */
export async function dbSnapshot(s: TestServer): Promise<unknown> {
  return {
    certificates: await s.query(
      'SELECT serial, status, revoked_at, revocation_reason FROM certificates ORDER BY id',
    ),
    joinTokens: await s.query(
      'SELECT id, used_at, used_by, expires_at FROM join_tokens ORDER BY id',
    ),
    entries: await s.query(
      'SELECT id, spiffe_id, dns_names, max_ttl_ms, enabled, updated_at FROM entries ORDER BY id',
    ),
    compromisedKeys: await s.query('SELECT spki_sha256 FROM compromised_keys ORDER BY spki_sha256'),
    audit: await s.query('SELECT count(*) AS n, max(id) AS last FROM audit_events'),
  }
}

/** Rows of one SQL query against the server's database (a connection of the test's own). */
export function query<T = any>(s: TestServer, sql: string, ...params: SqlValue[]): Promise<T[]> {
  return s.query<T>(sql, ...params)
}

/** The server still answers (a refused request must not have broken it). */
export async function expectServing(s: TestServer): Promise<void> {
  const r = await s.call('GET', '/healthz')
  expect(r.status).toBe(200)
  expect(r.body).toEqual({ status: 'ok' })
}

/** POST /v1/enroll with a join token and a JSON body. */
export function enrollWith(s: TestServer, token: string, json: unknown): Promise<ApiResponse> {
  return s.call('POST', '/v1/enroll', { headers: { authorization: `Bearer ${token}` }, json })
}

/**
 * A client certificate from a different CA, made with openssl: a throwaway root signs a
 * leaf with `san` (default: our admin SPIFFE ID) and, if given, the serial of one of ours.
 */
export function foreignCredential(opts: { san?: string; serialHex?: string } = {}): {
  certPem: string
  keyPem: string
} {
  const dir = tempDir('certbound-foreign-')
  const p = (f: string) => join(dir, f)
  const run = (args: string[]) => {
    const r = openssl(args)
    if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.out}`)
  }
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  run([
    'req',
    '-x509',
    ...ec,
    '-subj',
    '/O=example.org/CN=not our root',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.pem'),
    '-days',
    '2',
  ])
  run([
    'req',
    '-new',
    ...ec,
    '-subj',
    '/O=example.org',
    '-keyout',
    p('leaf.key'),
    '-out',
    p('leaf.csr'),
  ])
  writeFileSync(
    p('ext.cnf'),
    `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=${opts.san ?? 'URI:spiffe://example.org/admin'}\n`,
  )
  const serial = opts.serialHex ? ['-set_serial', `0x${opts.serialHex}`] : []
  run([
    'x509',
    '-req',
    '-in',
    p('leaf.csr'),
    '-CA',
    p('ca.pem'),
    '-CAkey',
    p('ca.key'),
    '-days',
    '1',
    '-extfile',
    p('ext.cnf'),
    ...serial,
    '-out',
    p('leaf.pem'),
  ])
  return {
    certPem: readFileSync(p('leaf.pem'), 'utf8'),
    keyPem: readFileSync(p('leaf.key'), 'utf8'),
  }
}
