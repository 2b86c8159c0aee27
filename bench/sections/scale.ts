import { join } from 'node:path'
import { request } from 'undici'
import { CertboundServer, type Credential, type Obj } from '../lib/certbound.js'
import { sendOk } from '../lib/http.js'
import { ratio, type Report, type Row } from '../lib/report.js'
import type { ScenarioOptions } from '../lib/scenario.js'
import { activeFamilies, bulkInsert, type BulkCounts } from '../scale/sqlite-bulk.js'
import { certboundLoad, type HttpsResults } from './https.js'

/**
 * Section 6 (`npm run bench -- --scale`): the same server on a database that looks like a
 * large fleet's: 1,000,000 certificates (100,000 of them revoked and unexpired) and 1,000,000
 * token families, bulk-inserted while the server is stopped. Issuance and token rates against
 * the empty database; the revocation of a certificate with a 100,000-entry CRL to rebuild, and
 * of one with 10,000 bound token families; bytes per row on disk.
 */

const env = (name: string, fallback: number) => {
  const v = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(v) || v < 0) throw new TypeError(`${name} must be a whole number`)
  return v
}

export function scaleCounts(): BulkCounts {
  return {
    certificates: env('BENCH_SCALE_CERTS', 1_000_000),
    revoked: env('BENCH_SCALE_REVOKED', 100_000),
    families: env('BENCH_SCALE_FAMILIES', 1_000_000),
    cascade: env('BENCH_SCALE_CASCADE', 10_000),
  }
}

/** Revokes over the admin API; the answer comes after the commit and the CRL rebuild. */
async function revokeMs(server: CertboundServer, serial: string): Promise<number> {
  const t0 = performance.now()
  await sendOk(server.admin, `${server.url}/v1/certificates/${serial}/revoke`, {
    json: { reason: 'superseded' },
  })
  return performance.now() - t0
}

async function crl(server: CertboundServer): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now()
  const r = await request(`${server.url}/v1/crl`, { dispatcher: server.admin })
  const body = Buffer.from(await r.body.arrayBuffer())
  if (r.statusCode !== 200)
    throw new Error(`GET /v1/crl: ${r.statusCode}; the server's log ends:\n${server.child.tail()}`)
  return { ms: performance.now() - t0, bytes: body.length }
}

export async function scaleSection(
  report: Report,
  dir: string,
  clients: number,
  load: ScenarioOptions,
  overrides: Obj = {},
): Promise<void> {
  const S = '6. scale (bulk-inserted database)'
  const counts = scaleCounts()
  const home = join(dir, 'scale')
  let server = await CertboundServer.start(home, overrides)
  let victim: Credential
  let plain: { before: Credential; after: Credential }
  let empty: HttpsResults
  let creds: Credential[]
  let entryIds: string[]
  let tokenOfVictim: string
  try {
    ;({ creds, entryIds } = await server.workloads(clients, 'client'))
    const extra = (await server.workloads(3, 'revoke')).creds
    victim = extra[0]!
    plain = { before: extra[1]!, after: extra[2]! }
    tokenOfVictim = (
      await sendOk(server.agent(victim), `${server.url}/oauth/token`, {
        form: { grant_type: 'client_credentials' },
      })
    ).access_token
    empty = await certboundLoad(server, creds, entryIds, load, ['token', 'enroll'])
    for (const [name, label] of [
      ['token', 'token grants'],
      ['enroll', 'enrolments'],
    ] as const) {
      const r = empty[name]
      report.add({
        section: S,
        name: `${label} on the empty database`,
        value: r?.perSecond ?? null,
        unit: '/s',
        ...(r ? { p50Ms: r.p50, p99Ms: r.p99, cpuUs: r.cpuUs } : {}),
      })
    }
    const emptyRevoke = await revokeMs(server, plain.before.serial)
    report.add({
      section: S,
      name: 'revoke on the empty database (+ CRL)',
      value: emptyRevoke,
      unit: 'ms',
    })
  } finally {
    await server.stop()
  }

  const bulk = bulkInsert(join(server.dataDir, 'certbound.db'), counts, victim.serial)
  report.add({
    section: S,
    name: `bulk insert: ${counts.certificates.toLocaleString('en-US')} certificates`,
    value: bulk.certSeconds,
    unit: 's',
    note: `${counts.revoked.toLocaleString('en-US')} revoked`,
  })
  report.add({
    section: S,
    name: `bulk insert: ${(counts.families + counts.cascade).toLocaleString('en-US')} token families`,
    value: bulk.familySeconds,
    unit: 's',
    note: 'each with one refresh and one access token',
  })
  report.add({
    section: S,
    name: 'bytes per certificate on disk (with indexes)',
    value: bulk.bytesPerCertificate,
    unit: 'B',
  })
  report.add({
    section: S,
    name: 'bytes per token family on disk (+ refresh + access token)',
    value: bulk.bytesPerFamily,
    unit: 'B',
  })
  report.add({ section: S, name: 'database file', value: bulk.fileBytes / 1024 / 1024, unit: 'MB' })

  const t0 = performance.now()
  server = await CertboundServer.start(home, overrides, 'certbound-scaled')
  report.add({
    section: S,
    name: 'server start on the big database',
    value: (performance.now() - t0) / 1000,
    unit: 's',
  })
  try {
    const big = await certboundLoad(server, creds, entryIds, load, ['token', 'enroll'])
    const rows: Partial<Record<'token' | 'enroll', Row>> = {}
    for (const [name, label] of [
      ['token', 'token grants'],
      ['enroll', 'enrolments'],
    ] as const) {
      rows[name] = report.add({
        section: S,
        name: `${label} on the big database`,
        value: big[name]?.perSecond ?? null,
        unit: '/s',
        ...(big[name]
          ? { p50Ms: big[name].p50, p99Ms: big[name].p99, cpuUs: big[name].cpuUs }
          : {}),
        ratio: {
          value: ratio(big[name]?.perSecond, empty[name]?.perSecond),
          to: 'the empty database',
        },
      })
    }
    const crlRevoke = await revokeMs(server, plain.after.serial)
    // Served before the row is added: a revocation answers 200 even when its CRL build failed.
    const served = await crl(server)
    const crlRow = report.add({
      section: S,
      name: `revoke, CRL of ${counts.revoked.toLocaleString('en-US')}+ entries rebuilt`,
      value: crlRevoke,
      unit: 'ms',
    })
    report.add({
      section: S,
      name: 'GET /v1/crl (served as stored)',
      value: served.ms,
      unit: 'ms',
    })
    report.add({
      section: S,
      name: 'CRL size (DER)',
      value: served.bytes / 1024 / 1024,
      unit: 'MB',
    })
    const cascadeRevoke = await revokeMs(server, victim.serial)
    const left = activeFamilies(join(server.dataDir, 'certbound.db'), victim.serial)
    const introspected = await sendOk(server.agent(creds[0]!), `${server.url}/oauth/introspect`, {
      form: { token: tokenOfVictim },
    })
    if (left !== 0 || introspected.active !== false)
      throw new Error(
        `the cascade left ${left} families active (introspection: ${JSON.stringify(introspected)})`,
      )
    report.add({
      section: S,
      name: `revoke, cascade to ${counts.cascade.toLocaleString('en-US')} token families + CRL`,
      value: cascadeRevoke,
      unit: 'ms',
      note: `cascade alone ≈ ${(cascadeRevoke - crlRevoke).toFixed(0)} ms`,
    })
    const rate = (n: 'token' | 'enroll') => ratio(big[n]?.perSecond, empty[n]?.perSecond)
    report.target({
      name: 'token grants, big database vs empty',
      value: rate('token'),
      op: '>=',
      bound: 0.9,
      unit: 'x',
      ...(rows.token ? { row: rows.token } : {}),
    })
    report.target({
      name: 'enrolments, big database vs empty',
      value: rate('enroll'),
      op: '>=',
      bound: 0.9,
      unit: 'x',
      ...(rows.enroll ? { row: rows.enroll } : {}),
    })
    report.target({
      name: `CRL of ${counts.revoked.toLocaleString('en-US')} entries built (revoke latency)`,
      value: crlRevoke,
      op: '<',
      bound: 2000,
      unit: 'ms',
      row: crlRow,
    })
  } finally {
    await server.stop()
  }
  // On the big database the cascade is a small part of a revoke that rebuilds a 3 MB CRL, and
  // the difference of two such revokes is mostly that rebuild's noise: measured apart, on a
  // database whose CRL is a few entries, the cascade is what the two revokes differ by.
  const alone = await cascadeAlone(join(dir, 'scale-cascade'), counts.cascade, overrides)
  const aloneRow = report.add({
    section: S,
    name: `revoke, cascade to ${counts.cascade.toLocaleString('en-US')} token families (small CRL)`,
    value: alone.victimMs,
    unit: 'ms',
    note: `the same revoke without families: ${alone.plainMs.toFixed(1)} ms`,
  })
  report.target({
    name: `cascade of ${counts.cascade.toLocaleString('en-US')} tokens (revoke with them minus without)`,
    value: alone.victimMs - alone.plainMs,
    op: '<',
    bound: 100,
    unit: 'ms',
    row: aloneRow,
  })
}

/**
 * Two certificates on an otherwise empty database, one with `families` bound token families
 * (bulk-inserted); the revocation latency of each, in that order of CRL size (the second CRL
 * has one entry more).
 */
async function cascadeAlone(
  home: string,
  families: number,
  overrides: Obj,
): Promise<{ victimMs: number; plainMs: number }> {
  let server = await CertboundServer.start(home, overrides, 'certbound-cascade')
  let victim: Credential
  let plain: Credential
  try {
    ;[victim, plain] = (await server.workloads(2, 'cascade')).creds as [Credential, Credential]
  } finally {
    await server.stop()
  }
  const file = join(server.dataDir, 'certbound.db')
  bulkInsert(file, { certificates: 0, revoked: 0, families: 0, cascade: families }, victim.serial)
  server = await CertboundServer.start(home, overrides, 'certbound-cascade-2')
  try {
    const plainMs = await revokeMs(server, plain.serial)
    const victimMs = await revokeMs(server, victim.serial)
    const left = activeFamilies(file, victim.serial)
    if (left !== 0) throw new Error(`the cascade left ${left} families active`)
    return { victimMs, plainMs }
  } finally {
    await server.stop()
  }
}
