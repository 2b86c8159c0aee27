import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openSqlite } from '../../src/db/sqlite/open.js'
import { makeCsr, openssl } from '../helpers/openssl.js'

const TSX = join(process.cwd(), 'node_modules/.bin/tsx')
const CLI = join(process.cwd(), 'src/cli/index.ts')

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** The CLI as a real process, with a clean environment (no CERTBOUND_* leaking in). */
function cli(args: string[], config: string): Promise<Run> {
  const env = { ...process.env }
  delete env.CERTBOUND_CONFIG
  delete env.CERTBOUND_SERVER
  return new Promise((resolve) => {
    execFile(
      TSX,
      [CLI, '--config', config, ...args],
      { env, timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
      },
    )
  })
}

function json(r: Run): any {
  expect(r.code, r.stderr).toBe(0)
  return JSON.parse(r.stdout)
}

/** A port that was free a moment ago (listen on 0, read it, close). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/** Hash of every file under `dir` (path → sha256), to prove a refused command changed nothing. */
function treeHash(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, name)
    if (statSync(p).isFile()) out[name] = createHash('sha256').update(readFileSync(p)).digest('hex')
  }
  return out
}

function writeConfig(dir: string, port: number): string {
  const file = join(dir, 'ca-config.yaml')
  writeFileSync(
    file,
    `trust_domain: example.org\ndata_dir: ./data\nlog_level: info\nserver:\n  listen: 127.0.0.1:${port}\n`,
  )
  return file
}

describe('init (a real process)', () => {
  let dir: string
  let config: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'certbound-cli-init-'))
    config = writeConfig(dir, await freePort())
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('creates the CA, keys 0600, bundle, intermediate and an admin credential for spiffe://example.org/admin', async () => {
    const out = json(await cli(['init'], config))
    const data = join(dir, 'data')
    expect(out.data_dir).toBe(data)
    for (const key of [
      'ca/root-key.pem',
      'ca/intermediate-key.pem',
      'ca/kek.key',
      'admin/admin-key.pem',
    ]) {
      expect(statSync(join(data, key)).mode & 0o777, key).toBe(0o600)
    }
    // The signing key and the server's TLS key live in the database, sealed: never in clear.
    const db = ['certbound.db', 'certbound.db-wal'].map((f) => join(data, f)).filter(existsSync)
    expect(Buffer.concat(db.map((f) => readFileSync(f))).includes('PRIVATE KEY')).toBe(false)
    // No private key is readable by others anywhere under data_dir.
    for (const name of readdirSync(data, { recursive: true }) as string[]) {
      const p = join(data, name)
      if (statSync(p).isFile() && readFileSync(p, 'utf8').includes('PRIVATE KEY'))
        expect(statSync(p).mode & 0o077, name).toBe(0)
    }

    const bundle = join(data, 'ca/bundle.pem')
    const inter = join(data, 'ca/intermediate.pem')
    const admin = join(data, 'admin/admin.pem')
    expect(openssl(['x509', '-in', bundle, '-noout', '-subject']).out).toMatch(/root CA/)
    const v = openssl(['verify', '-x509_strict', '-CAfile', bundle, '-untrusted', inter, admin])
    expect(v.code, v.out).toBe(0)
    const san = openssl(['x509', '-in', admin, '-noout', '-ext', 'subjectAltName'])
    expect(san.out.split('\n')[1]!.trim()).toBe('URI:spiffe://example.org/admin')
    // The admin key matches the admin certificate.
    const certKey = openssl(['x509', '-in', admin, '-noout', '-pubkey']).out
    const keyKey = openssl(['pkey', '-in', join(data, 'admin/admin-key.pem'), '-pubout']).out
    expect(certKey).toBe(keyKey)
  })

  it('init again exits non-zero with a message and changes nothing', async () => {
    const data = join(dir, 'data')
    const before = treeHash(data)
    const r = await cli(['init'], config)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/already exists/)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stdout).toBe('')
    expect(treeHash(data)).toEqual(before)
  })

  it('serve on a database newer than the code: non-zero exit, a clear message, the file untouched', async () => {
    const newer = join(dir, 'newer')
    const cfg = join(newer, 'ca-config.yaml')
    mkdirSync(newer)
    writeFileSync(cfg, 'data_dir: ./data\nserver:\n  listen: 127.0.0.1:0\n')
    const driver = openSqlite(join(newer, 'data/certbound.db'))
    driver.connection
      .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, ?, 0)')
      .run('9999_future.sql')
    // All of its connections: one left open would checkpoint the log whenever it is collected.
    await driver.close()
    const before = treeHash(join(newer, 'data'))
    const r = await cli(['serve'], cfg)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/schema version 9999 is newer/)
    expect(treeHash(join(newer, 'data'))).toEqual(before)
  })

  it('an invalid config: non-zero, the message names the key', async () => {
    const bad = join(dir, 'bad.yaml')
    writeFileSync(bad, 'server:\n  lisen: 127.0.0.1:1\n')
    const r = await cli(['init'], bad)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('server.lisen')
  })
})

describe('serve and the admin commands (real processes over HTTPS)', () => {
  let dir: string
  let config: string
  let port: number
  let server: ChildProcess
  let serverLog = ''
  const secrets: string[] = []
  let exited: Promise<number | null>

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'certbound-cli-serve-'))
    port = await freePort()
    config = writeConfig(dir, port)
    const env = { ...process.env }
    delete env.CERTBOUND_CONFIG
    // Through npm, as users run it: SIGTERM to npm must stop the server, not orphan it.
    server = spawn('npm', ['run', '-s', 'certbound', '--', '--config', config, 'serve'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    exited = new Promise((resolve) => server.once('exit', (code) => resolve(code)))
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`serve did not start:\n${serverLog}`)),
        30_000,
      )
      server.stderr!.on('data', (chunk: Buffer) => {
        serverLog += chunk.toString()
        if (serverLog.includes('certbound serving')) {
          clearTimeout(timer)
          resolve()
        }
      })
      server.once('exit', (code) => reject(new Error(`serve exited ${code}:\n${serverLog}`)))
    })
  })
  afterAll(async () => {
    if (server.exitCode === null) {
      server.kill('SIGKILL')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })

  it('serve auto-initialises data_dir and answers on the configured port', async () => {
    const bundle = readFileSync(join(dir, 'data/ca/bundle.pem'), 'utf8')
    const agent = new Agent({ connect: { ca: bundle } })
    try {
      const r = await request(`https://127.0.0.1:${port}/healthz`, { dispatcher: agent })
      expect(r.statusCode).toBe(200)
      expect(await r.body.json()).toEqual({ status: 'ok' })
    } finally {
      await agent.close()
    }
    // Logs never carry keys.
    expect(serverLog).not.toMatch(/PRIVATE KEY/)
  })

  it('entry create / list / show, join-token create, cert list / show / revoke: exit 0 with JSON', async () => {
    const entry = json(
      await cli(
        [
          'entry',
          'create',
          'spiffe://example.org/cli/web',
          '--dns',
          'web.example.org',
          '--ttl',
          '2h',
        ],
        config,
      ),
    )
    expect(entry).toMatchObject({
      spiffe_id: 'spiffe://example.org/cli/web',
      dns_names: ['web.example.org'],
      ttl: '2h',
      enabled: true,
    })
    const [list, shown] = await Promise.all([
      cli(['entry', 'list'], config),
      cli(['entry', 'show', entry.id], config),
    ])
    expect(json(list).items.map((e: { id: string }) => e.id)).toContain(entry.id)
    expect(json(shown)).toEqual(entry)

    const jt = json(await cli(['join-token', 'create', entry.id, '--ttl', '10m'], config))
    secrets.push(jt.token.slice(-32))
    expect(jt.token).toMatch(/^[A-Za-z0-9_-]{43,}$/)
    expect(new Date(jt.expires_at).getTime()).toBeGreaterThan(Date.now())

    // A workload enrols with the token over HTTPS.
    const bundle = readFileSync(join(dir, 'data/ca/bundle.pem'), 'utf8')
    const agent = new Agent({ connect: { ca: bundle } })
    let serial: string
    try {
      const res = await request(`https://127.0.0.1:${port}/v1/enroll`, {
        method: 'POST',
        dispatcher: agent,
        headers: { authorization: `Bearer ${jt.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          csr: makeCsr({ san: 'URI:spiffe://example.org/cli/web,DNS:web.example.org' }).csrPem,
        }),
      })
      const body = (await res.body.json()) as { serial: string }
      expect(res.statusCode).toBe(201)
      serial = body.serial
    } finally {
      await agent.close()
    }

    const certs = json(
      await cli(['cert', 'list', '--spiffe-id', 'spiffe://example.org/cli/web'], config),
    )
    expect(certs.items.map((c: { serial: string }) => c.serial)).toEqual([serial])
    expect(json(await cli(['cert', 'show', serial.toUpperCase()], config))).toMatchObject({
      serial,
      status: 'valid',
    })
    const revoked = json(await cli(['cert', 'revoke', serial, '--reason', 'keyCompromise'], config))
    expect(revoked).toMatchObject({ serial, status: 'revoked', revocation_reason: 'keyCompromise' })
    expect(
      json(await cli(['cert', 'list', '--status', 'revoked'], config)).items.map(
        (c: { serial: string }) => c.serial,
      ),
    ).toContain(serial)

    const disabled = json(await cli(['entry', 'disable', entry.id], config))
    expect(disabled.enabled).toBe(false)
  })

  it('admin command failures: non-zero exit, one-line message from the server', async () => {
    const r = await cli(['entry', 'create', 'spiffe://example.org/a/../b'], config)
    expect(r.code).not.toBe(0)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/400/)
    expect(r.stderr).toMatch(/spiffe_id/)
    const missing = await cli(['cert', 'show', '0123456789abcdef'], config)
    expect(missing.code).not.toBe(0)
    expect(missing.stderr).toMatch(/404/)
  })

  it('admin-credential issues a new admin certificate that works against the running server', async () => {
    const adminPem = join(dir, 'data/admin/admin.pem')
    const before = readFileSync(adminPem, 'utf8')
    const out = json(await cli(['admin-credential'], config))
    const after = readFileSync(adminPem, 'utf8')
    expect(after).not.toBe(before)
    expect(out.serial).toBe(
      openssl(['x509', '-in', adminPem, '-noout', '-serial'])
        .out.trim()
        .slice('serial='.length)
        .toLowerCase(),
    )
    expect(statSync(join(dir, 'data/admin/admin-key.pem')).mode & 0o777).toBe(0o600)
    expect(openssl(['x509', '-in', adminPem, '-noout', '-ext', 'subjectAltName']).out).toContain(
      'URI:spiffe://example.org/admin',
    )
    // The server knows the new certificate at once (it is in the shared database).
    const list = json(await cli(['cert', 'show', out.serial], config))
    expect(list).toMatchObject({ serial: out.serial, kind: 'admin', status: 'valid' })
  })

  it('SIGTERM stops serve with exit code 0; an admin command then fails with a one-line message', async () => {
    server.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(serverLog).toMatch(/SIGTERM/)
    // The whole log of the run: no join token, no private key.
    expect(secrets).toHaveLength(1)
    for (const secret of secrets) expect(serverLog).not.toContain(secret)
    expect(serverLog).not.toMatch(/PRIVATE KEY/)
    const r = await cli(['entry', 'list'], config)
    expect(r.code).not.toBe(0)
    expect(r.stdout).toBe('')
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/^certbound: /)
    expect(r.stderr).toMatch(/ECONNREFUSED|connect/i)
  })
})
