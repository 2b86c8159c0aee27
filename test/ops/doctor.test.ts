import { execFile } from 'node:child_process'
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
  closeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestServer, testBackend } from '../helpers/server.js'

const TSX = join(process.cwd(), 'node_modules/.bin/tsx')
const CLI = join(process.cwd(), 'src/cli/index.ts')

function cli(args: string[], config: string): Promise<{ code: number; out: string }> {
  const env = { ...process.env }
  delete env.CERTBOUND_CONFIG
  return new Promise((resolve) => {
    execFile(TSX, [CLI, '--config', config, ...args], { env, timeout: 60_000 }, (e, o, r) =>
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: `${o}${r}` }),
    )
  })
}

/** A config file for the CLI naming the server's data_dir and database. */
function configFor(dir: string, dataDir: string, url: string | undefined): string {
  const file = join(dir, 'ca-config.yaml')
  const config = {
    trust_domain: 'example.org',
    data_dir: dataDir,
    ...(url && { database: { url } }),
  }
  writeFileSync(file, stringify(config))
  return file
}

const LINE = /^(ok|warn|fail) {1,2}[a-zA-Z ]+: \S/

describe(`certbound doctor (${testBackend()})`, () => {
  let s: TestServer
  let dir: string
  let config: string
  beforeAll(async () => {
    s = await TestServer.start()
    dir = mkdtempSync(join(tmpdir(), 'certbound-doctor-'))
    config = configFor(dir, s.dataDir, s.databaseUrl)
  })
  afterAll(async () => {
    await s.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('a healthy CA: exit 0, one line per finding, every check named', async () => {
    const r = await cli(['doctor'], config)
    expect(r.code, r.out).toBe(0)
    const lines = r.out.trim().split('\n')
    for (const l of lines) expect(l).toMatch(LINE)
    const checks = new Set(lines.map((l) => l.replace(/^\w+ +/, '').split(':')[0]))
    for (const c of ['config', 'key file', 'key pair', 'chain', 'CA expiry', 'database'])
      expect(checks).toContain(c)
    for (const c of ['database CA', 'clock', 'integrity']) expect(checks).toContain(c)
    expect(r.out).toContain(`database: ${testBackend()}, schema version`)
    expect(lines.filter((l) => l.startsWith('fail'))).toEqual([])
  })

  it('a CA key readable by others, and a key that is not its certificate’s: exit 1, each named', async () => {
    const key = join(s.dataDir, 'ca/intermediate-key.pem')
    const adminCert = join(s.dataDir, 'admin/admin.pem')
    const saved = readFileSync(adminCert)
    chmodSync(key, 0o644)
    writeFileSync(adminCert, readFileSync(join(s.dataDir, 'ca/intermediate.pem')))
    try {
      const r = await cli(['doctor'], config)
      expect(r.code).toBe(1)
      expect(r.out).toContain('fail  key file: ca/intermediate-key.pem has mode 0644 (want 0600)')
      expect(r.out).toContain('fail  key pair: admin/admin-key.pem does not match admin/admin.pem')
    } finally {
      chmodSync(key, 0o600)
      writeFileSync(adminCert, saved)
    }
    expect((await cli(['doctor'], config)).code).toBe(0)
  })

  it('a broken config is a finding too', async () => {
    const bad = join(dir, 'bad.yaml')
    writeFileSync(bad, 'no_such_key: 1\n')
    const r = await cli(['doctor'], bad)
    expect(r.code).toBe(1)
    expect(r.out).toMatch(/^fail  config: .*unknown key "no_such_key"/m)
  })

  it.skipIf(testBackend() !== 'sqlite')(
    'SQLite: a damaged database file fails the integrity check',
    async () => {
      const copy = join(dir, 'damaged')
      cpSync(s.dataDir, copy, { recursive: true })
      const file = join(copy, 'certbound.db')
      const db = new Database(file)
      db.pragma('wal_checkpoint(TRUNCATE)')
      const pageSize = db.pragma('page_size', { simple: true }) as number
      const pages = db.pragma('page_count', { simple: true }) as number
      db.close()
      // Scribble over the b-tree headers of a few pages (never page 1, the file header).
      const fd = openSync(file, 'r+')
      for (let p = 1; p < Math.min(pages, 12); p += 2)
        writeSync(fd, Buffer.alloc(16, 0xa5), 0, 16, p * pageSize)
      closeSync(fd)
      const r = await cli(['doctor'], configFor(copy, copy, undefined))
      expect(r.code).toBe(1)
      expect(r.out).toMatch(/^fail  (integrity|database): /m)
    },
  )

  it.skipIf(testBackend() !== 'postgres')(
    'PostgreSQL: backup runs pg_dump (password through PGPASSWORD); restore says how to pg_restore',
    async () => {
      const file = join(dir, 'dump.pgc')
      const r = await cli(['backup', file], config)
      expect(r.code, r.out).toBe(0)
      expect(existsSync(file)).toBe(true)
      expect(readFileSync(file).subarray(0, 5).toString()).toBe('PGDMP') // custom format
      const manifest = JSON.parse(readFileSync(`${file}.manifest.json`, 'utf8'))
      expect(manifest.not_included).toContain('ca/kek.key')
      const restore = await cli(['restore', file], config)
      expect(restore.code).toBe(1)
      expect(restore.out).toContain('pg_restore --no-owner')
    },
  )

  // Last: it rotates the CA under the running server.
  it("after ca rotate: ca/intermediate.pem is the new issuer, init's key file is checked against the database's record of it", async () => {
    const rotated = await cli(['ca', 'rotate'], config)
    expect(rotated.code, rotated.out).toBe(0)
    const r = await cli(['doctor'], config)
    expect(r.code, r.out).toBe(0)
    expect(r.out).toMatch(
      /^ok {4}key pair: ca\/intermediate-key\.pem matches init's issuing CA [0-9a-f]+ \(a rotation made ca\/intermediate\.pem another CA's\)$/m,
    )
    const key = join(s.dataDir, 'ca/intermediate-key.pem')
    const saved = readFileSync(key)
    writeFileSync(key, readFileSync(join(s.dataDir, 'ca/root-key.pem')))
    try {
      const bad = await cli(['doctor'], config)
      expect(bad.code).toBe(1)
      expect(bad.out).toContain(
        'fail  key pair: ca/intermediate-key.pem does not match ca/intermediate.pem nor any issuing CA the database records for it',
      )
    } finally {
      writeFileSync(key, saved)
    }
  })
})
