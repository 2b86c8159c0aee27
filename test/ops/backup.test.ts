import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import Database from 'better-sqlite3'
import { request } from 'undici'
import { afterAll, describe, expect, it } from 'vitest'
import { ProcessServer } from '../helpers/process-server.js'
import type { Credential } from '../helpers/server.js'

const TSX = join(process.cwd(), 'node_modules/.bin/tsx')
const CLI = join(process.cwd(), 'src/cli/index.ts')

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** The CLI as a real process. */
export function cli(args: string[], config: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const full = { ...process.env, ...env }
  delete full.CERTBOUND_CONFIG
  return new Promise((resolve) => {
    execFile(TSX, [CLI, '--config', config, ...args], { env: full, timeout: 60_000 }, (e, o, r) =>
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout: o, stderr: r }),
    )
  })
}

/** The serials a DER CRL lists (RFC 5280 §5.1: each revokedCertificates entry starts with one). */
async function crlSerials(s: ProcessServer, serials: string[]): Promise<string[]> {
  const res = await request(`${s.url}/v1/crl`, { dispatcher: s.agent() })
  const der = Buffer.from(await res.body.arrayBuffer())
  return serials.filter((serial) => der.includes(Buffer.from(serial, 'hex')))
}

describe('certbound backup and restore (SQLite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-backup-'))
  const backupFile = join(dir, 'backup.db')
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('a backup taken under load is consistent; restored, the server serves the same certificates and revocations', async () => {
    let s = await ProcessServer.start({}, { dir })
    const a = await s.enroll('spiffe://example.org/backup/a')
    const b = await s.enroll('spiffe://example.org/backup/b')
    await s.call('POST', `/v1/certificates/${b.serial}/revoke`, {
      as: s.admin,
      json: { reason: 'keyCompromise' },
    })

    // Load while the backup runs: token grants and enrolments, bounded in count.
    let running = true
    const done: number[] = []
    const load = async (i: number) => {
      const agent = s.agent(a)
      for (let n = 0; running && n < 2000; n++, done.push(Date.now())) {
        if (n % 5 === 0) await s.enroll(`spiffe://example.org/backup/load/${i}-${n}`)
        else
          await s.call('POST', '/oauth/token', {
            agent,
            form: { grant_type: 'client_credentials' },
          })
      }
    }
    const loads = Promise.all([0, 1, 2].map(load))
    await new Promise((r) => setTimeout(r, 300))
    const started = Date.now()
    const made = await cli(['backup', backupFile], s.configFile)
    const ended = Date.now()
    running = false
    await loads
    // The server was busy while the backup ran (requests completed during it).
    expect(done.filter((t) => t > started && t < ended).length).toBeGreaterThan(10)
    expect(made.code, made.stderr).toBe(0)
    const report = JSON.parse(made.stdout)
    expect(report.manifest.not_included.split(' ')).toEqual(
      expect.arrayContaining(['ca/root-key.pem', 'ca/intermediate-key.pem', 'ca/kek.key']),
    )
    expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([])

    // One moment's state: every certificate has its audit event, every spent token its certificate.
    const copy = new Database(backupFile, { readonly: true })
    const taken = copy.prepare('SELECT serial, status FROM certificates ORDER BY serial').all()
    try {
      expect(copy.pragma('integrity_check', { simple: true })).toBe('ok')
      expect(copy.pragma('journal_mode', { simple: true })).toBe('delete')
      const orphans = copy
        .prepare(
          `SELECT c.serial FROM certificates c WHERE c.kind = 'workload' AND NOT EXISTS (
             SELECT 1 FROM audit_events e WHERE e.subject = c.serial
             AND e.action IN ('certificate.enroll', 'certificate.renew'))`,
        )
        .all()
      expect(orphans).toEqual([])
      const spent = copy
        .prepare(
          `SELECT j.id FROM join_tokens j WHERE j.used_by IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = j.used_by)`,
        )
        .all()
      expect(spent).toEqual([])
      expect(taken.length).toBeGreaterThan(3) // some load enrolments made it in
    } finally {
      copy.close()
    }

    // After the backup: a is revoked and c enrolled — a restore forgets both.
    const c = await s.enroll('spiffe://example.org/backup/c')
    await s.call('POST', `/v1/certificates/${a.serial}/revoke`, { as: s.admin, json: {} })
    const refused = await cli(['restore', backupFile], s.configFile)
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toMatch(/a server is running on .*stop it first/)
    await s.stop()

    const restored = await cli(['restore', backupFile], s.configFile)
    expect(restored.code, restored.stderr).toBe(0)
    expect(JSON.parse(restored.stdout).previous).toMatch(/certbound\.db\.before-restore-/)

    s = await ProcessServer.start({}, { dir })
    try {
      const listed = await s.call('GET', '/v1/certificates?limit=1000', { as: s.admin })
      const now = listed.body.items
        .map((i: { serial: string; status: string }) => ({ serial: i.serial, status: i.status }))
        .sort((x: { serial: string }, y: { serial: string }) => (x.serial < y.serial ? -1 : 1))
      // The admin credential and the server's own certificate are listed too: compare the rest.
      const workload = (rows: { serial: string }[]) =>
        rows.filter((r) => taken.some((t: any) => t.serial === r.serial))
      expect(workload(now)).toEqual(taken)
      expect(now.find((r: { serial: string }) => r.serial === c.serial)).toBeUndefined()
      const token = (cred: Credential) =>
        s.call('POST', '/oauth/token', { as: cred, form: { grant_type: 'client_credentials' } })
      expect((await token(a)).status).toBe(200) // its revocation came after the backup
      expect((await token(b)).status).toBe(401)
      expect((await token(c)).status).toBe(401) // enrolled after the backup: unknown
      expect(await crlSerials(s, [a.serial, b.serial])).toEqual([b.serial])
    } finally {
      await s.stop()
    }
  }, 180_000)

  it('restore refuses a backup of another CA, and a file that is no backup', async () => {
    const other = mkdtempSync(join(tmpdir(), 'certbound-other-'))
    try {
      const config = join(other, 'ca-config.yaml')
      writeFileSync(config, 'data_dir: ./data\nserver:\n  listen: 127.0.0.1:0\n')
      expect((await cli(['init'], config)).code).toBe(0)
      const refused = await cli(['restore', backupFile], config)
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(
        /the backup belongs to another CA \(root sha256 [0-9a-f]{64}\)/,
      )
      writeFileSync(join(other, 'junk.db'), 'not a database')
      const junk = await cli(['restore', join(other, 'junk.db')], config)
      expect(junk.code).toBe(1)
      expect(junk.stderr).toMatch(/not a certbound backup|cannot open/)
      // Nothing was replaced: the other CA's database still holds its own root.
      const db = new Database(join(other, 'data/certbound.db'), { readonly: true })
      const roots = db.prepare(`SELECT der FROM ca_certificates WHERE kind = 'root'`).all() as {
        der: Buffer
      }[]
      db.close()
      expect(roots).toHaveLength(1)
      expect(new X509Certificate(roots[0]!.der).subject).toContain('certbound root CA')
    } finally {
      rmSync(other, { recursive: true, force: true })
    }
  }, 120_000)
})
