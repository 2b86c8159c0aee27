import { spawn } from 'node:child_process'
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { afterAll, describe, expect, it } from 'vitest'
import { inspectDatabase } from '../helpers/db-inspect.js'
import { freePort, ProcessServer } from '../helpers/process-server.js'
import { sleep } from '../helpers/server.js'
import { databaseInvariants } from './invariants.js'

/*
 * Issue 14: a crash during `init` (or the first `serve`, which initialises) never leaves a CA
 * without its key, and the next start completes what the crash interrupted.
 */

const CLI = join(process.cwd(), 'src/cli/index.ts')
const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

async function configDir(): Promise<{ dir: string; config: string; dataDir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-initcrash-'))
  dirs.push(dir)
  const config = join(dir, 'ca-config.yaml')
  const listen = `127.0.0.1:${await freePort()}`
  writeFileSync(
    config,
    stringify({ trust_domain: 'example.org', data_dir: './data', server: { listen } }),
  )
  return { dir, config, dataDir: join(dir, 'data') }
}

/**
 * Runs `certbound <command>` and SIGKILLs it when `when` says so (polled every millisecond) or
 * when it is done. Resolves with how it ended.
 */
async function runUntil(
  args: string[],
  when: (elapsedMs: number) => boolean,
): Promise<{ killed: boolean; code: number | null; elapsedMs: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: 'ignore' })
  const started = Date.now()
  let done: { code: number | null } | undefined
  child.once('exit', (code) => (done = { code }))
  while (done === undefined) {
    if (when(Date.now() - started)) {
      child.kill('SIGKILL')
      await new Promise((r) => child.once('exit', r))
      return { killed: true, code: null, elapsedMs: Date.now() - started }
    }
    await sleep(1)
  }
  return { killed: false, code: done.code, elapsedMs: Date.now() - started }
}

const keyMatches = (certPem: string, keyPem: string) =>
  new X509Certificate(certPem).publicKey
    .export({ type: 'spki', format: 'der' })
    .equals(createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }))

/** Either no CA at all, or a whole one: every certificate with its key, the KEK, modes 0600. */
function caProblems(dataDir: string): string[] {
  const ca = join(dataDir, 'ca')
  if (!existsSync(ca)) return []
  const out: string[] = []
  const read = (f: string) => readFileSync(join(ca, f), 'utf8')
  for (const f of [
    'root.pem',
    'root-key.pem',
    'intermediate.pem',
    'intermediate-key.pem',
    'bundle.pem',
    'kek.key',
  ])
    if (!existsSync(join(ca, f))) out.push(`ca/${f} is missing`)
  if (out.length) return out
  for (const f of ['root-key.pem', 'intermediate-key.pem', 'kek.key'])
    if ((statSync(join(ca, f)).mode & 0o777) !== 0o600) out.push(`ca/${f} is not 0600`)
  if (!keyMatches(read('root.pem'), read('root-key.pem'))) out.push('root key does not match')
  if (!keyMatches(read('intermediate.pem'), read('intermediate-key.pem')))
    out.push('intermediate key does not match')
  const root = new X509Certificate(read('root.pem'))
  if (!new X509Certificate(read('intermediate.pem')).verify(root.publicKey))
    out.push('the intermediate is not signed by the root')
  if (readFileSync(join(ca, 'kek.key')).length !== 32) out.push('ca/kek.key is not 32 bytes')
  const admin = join(dataDir, 'admin')
  if (existsSync(join(admin, 'admin.pem'))) {
    if (!existsSync(join(admin, 'admin-key.pem'))) out.push('admin.pem without admin-key.pem')
    else if (
      !keyMatches(
        readFileSync(join(admin, 'admin.pem'), 'utf8'),
        readFileSync(join(admin, 'admin-key.pem'), 'utf8'),
      )
    )
      out.push('the admin key does not match admin.pem')
  }
  return out
}

/** After the crashes: `serve` starts on the same data_dir, with the same CA, and an admin credential that works. */
async function expectRecovered(dir: string, rootBefore: string | undefined): Promise<void> {
  const s = await ProcessServer.start({}, { dir })
  try {
    expect(caProblems(s.dataDir)).toEqual([])
    if (rootBefore) expect(readFileSync(join(s.dataDir, 'ca/root.pem'), 'utf8')).toBe(rootBefore)
    const entries = await s.call('GET', '/v1/entries', { as: s.admin })
    expect(entries.status, entries.text).toBe(200)
    const cred = await s.enroll('spiffe://example.org/after-the-crash')
    expect(cred.chainPem).toContain(s.intermediatePem.trim())
  } finally {
    await s.stop()
  }
}

const rootOf = (dataDir: string) =>
  existsSync(join(dataDir, 'ca/root.pem'))
    ? readFileSync(join(dataDir, 'ca/root.pem'), 'utf8')
    : undefined

describe('a crash during init never leaves a CA without its key', () => {
  it('init killed at random moments of its work, ten times', { timeout: 120_000 }, async () => {
    // When the work starts (the database file appears) and how long it lasts, measured here.
    const scratch = await configDir()
    let began = -1
    const dbFile = (d: string) => join(d, 'certbound.db')
    const full = await runUntil(['init', '--config', scratch.config], (t) => {
      if (began < 0 && existsSync(dbFile(scratch.dataDir))) began = t
      return false
    })
    expect(full.code).toBe(0)
    const work = full.elapsedMs - began
    let recovered = 0
    let kills = 0
    for (let attempt = 0; attempt < 20 && kills < 10; attempt++) {
      const { dir, config, dataDir } = await configDir()
      const delay = Math.random() * work * 0.9
      let seen = -1
      const r = await runUntil(['init', '--config', config], (t) => {
        if (seen < 0 && existsSync(dbFile(dataDir))) seen = t
        return seen >= 0 && t >= seen + delay
      })
      if (r.killed) kills++
      expect(caProblems(dataDir), `killed ${Math.round(delay)} ms into init`).toEqual([])
      // A CA a killed init committed: the next start takes it and completes init.
      if (r.killed && existsSync(join(dataDir, 'ca')) && recovered < 3) {
        recovered++
        await expectRecovered(dir, rootOf(dataDir))
      }
    }
    expect(kills).toBe(10)
  })

  it.each([
    ['the CA directory is committed', 'ca/intermediate-key.pem'],
    ['the admin key is written', 'admin/admin-key.pem'],
  ])(
    'serve killed the moment %s: the next start completes init',
    { timeout: 60_000 },
    async (_what, file) => {
      const { dir, config, dataDir } = await configDir()
      const r = await runUntil(['serve', '--config', config], () => existsSync(join(dataDir, file)))
      expect(r.killed).toBe(true)
      expect(caProblems(dataDir)).toEqual([])
      await expectRecovered(dir, rootOf(dataDir))
    },
  )
})

describe('completing an interrupted init', () => {
  it('does not re-create an admin credential the operator moved off the host', async () => {
    const { dir, config, dataDir } = await configDir()
    expect((await runUntil(['init', '--config', config], () => false)).code).toBe(0)
    rmSync(join(dataDir, 'admin'), { recursive: true })
    const s = await ProcessServer.start({}, { dir })
    try {
      expect(existsSync(join(dataDir, 'admin'))).toBe(false)
    } finally {
      await s.stop()
    }
  })
})

describe('a crash during key rotation never leaves the CA without a signing key', () => {
  it(
    'keys rotate --now killed at random moments: one whole key set signs after each',
    { timeout: 90_000 },
    async () => {
      const { dir, config, dataDir } = await configDir()
      expect((await runUntil(['init', '--config', config], () => false)).code).toBe(0)
      const db = inspectDatabase({ dataDir })
      const full = await runUntil(['keys', 'rotate', '--now', '--config', config], () => false)
      expect(full.code).toBe(0)
      let kills = 0
      for (let attempt = 0; attempt < 6 && kills < 3; attempt++) {
        const at = full.elapsedMs * (0.5 + Math.random() * 0.5)
        if (
          (await runUntil(['keys', 'rotate', '--now', '--config', config], (t) => t >= at)).killed
        )
          kills++
        // Sealed keys only, and at least one that is published and signs now.
        const keys = await db.query<{ sealed: number; live: number }>(
          `SELECT private_key_sealed IS NOT NULL AS sealed, withdraw_at IS NULL AS live FROM signing_keys`,
        )
        expect(keys.every((k) => k.sealed === 1)).toBe(true)
        expect(keys.filter((k) => k.live === 1)).toHaveLength(1)
      }
      expect(kills).toBeGreaterThanOrEqual(2)
      expect(await databaseInvariants(db)).toEqual([])
      const s = await ProcessServer.start({}, { dir })
      try {
        const cred = await s.enroll('spiffe://example.org/after-rotation')
        const t = await s.call('POST', '/oauth/token', {
          as: cred,
          form: { grant_type: 'client_credentials' },
        })
        expect(t.status, t.text).toBe(200)
      } finally {
        await s.stop()
      }
    },
  )
})
