import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { openssl } from '../helpers/openssl.js'
import { ProcessServer } from '../helpers/process-server.js'

const TSX = join(process.cwd(), 'node_modules/.bin/tsx')
const CLI = join(process.cwd(), 'src/cli/index.ts')
const PASSPHRASE = 'correct horse battery staple'

function cli(args: string[], config: string, env: NodeJS.ProcessEnv = {}) {
  const full = { ...process.env, ...env }
  delete full.CERTBOUND_CONFIG
  if (!('CERTBOUND_CA_KEY_PASSPHRASE' in env)) delete full.CERTBOUND_CA_KEY_PASSPHRASE
  return new Promise<{ code: number; out: string }>((resolve) => {
    execFile(TSX, [CLI, '--config', config, ...args], { env: full, timeout: 60_000 }, (e, o, r) =>
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: `${o}${r}` }),
    )
  })
}

const ENCRYPTED = '-----BEGIN ENCRYPTED PRIVATE KEY-----'

describe('passphrase-encrypted CA keys at rest (encrypted PKCS#8)', () => {
  const dirs: string[] = []
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'certbound-keys-'))
    dirs.push(d)
    return d
  }
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })))

  it('init with ca.key_passphrase_file: both CA keys encrypted, openssl opens them with it; the server serves; without it, a clear refusal', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'passphrase'), `${PASSPHRASE}\n`, { mode: 0o600 })
    const config = { ca: { key_passphrase_file: './passphrase' } }
    const s = await ProcessServer.start(config, { dir })
    try {
      for (const f of ['ca/root-key.pem', 'ca/intermediate-key.pem']) {
        const pem = readFileSync(join(s.dataDir, f), 'utf8')
        expect(pem.startsWith(ENCRYPTED)).toBe(true)
        // An independent reader: openssl, passphrase from a file (never argv).
        const out = openssl([
          'pkey',
          '-in',
          join(s.dataDir, f),
          '-passin',
          `file:${join(dir, 'passphrase')}`,
          '-noout',
          '-text',
        ])
        expect(out.code, out.out).toBe(0)
        expect(out.out).toMatch(/Private-Key: \(256 bit/)
      }
      const cred = await s.enroll('spiffe://example.org/encrypted')
      expect(cred.serial).toMatch(/^[0-9a-f]+$/)
      expect((await cli(['doctor'], s.configFile)).code).toBe(0)
    } finally {
      await s.stop()
    }
    // The same data_dir without the passphrase: refused at start, naming the file and the fix.
    writeFileSync(
      s.configFile,
      readFileSync(s.configFile, 'utf8').replace(
        /ca:\n\s+key_passphrase_file: \.\/passphrase\n/,
        '',
      ),
    )
    const doctor = await cli(['doctor'], s.configFile)
    expect(doctor.code).toBe(1)
    expect(doctor.out).toContain(
      'ca/intermediate-key.pem is encrypted: give its passphrase in ca.key_passphrase_file or CERTBOUND_CA_KEY_PASSPHRASE',
    )
    const wrong = await cli(['admin-credential'], s.configFile, {
      CERTBOUND_CA_KEY_PASSPHRASE: 'not it',
    })
    expect(wrong.code).toBe(1)
    // The first CA key file it opens is named (the root's, then the issuing CA's).
    expect(wrong.out).toMatch(
      /cannot read ca\/(root|intermediate)-key\.pem: wrong passphrase or damaged file/,
    )
    expect(wrong.out).not.toContain('not it')
  }, 180_000)

  it('ca encrypt-keys encrypts an existing CA under CERTBOUND_CA_KEY_PASSPHRASE; the CA then opens only with it', async () => {
    const dir = tempDir()
    const config = join(dir, 'ca-config.yaml')
    writeFileSync(config, 'data_dir: ./data\nserver:\n  listen: 127.0.0.1:0\n')
    expect((await cli(['init'], config)).code).toBe(0)
    const before = readFileSync(join(dir, 'data/ca/intermediate-key.pem'), 'utf8')
    expect(before).not.toContain(ENCRYPTED)
    expect((await cli(['ca', 'encrypt-keys'], config)).out).toContain('no passphrase')
    const env = { CERTBOUND_CA_KEY_PASSPHRASE: PASSPHRASE }
    const r = await cli(['ca', 'encrypt-keys'], config, env)
    expect(r.code, r.out).toBe(0)
    expect(JSON.parse(r.out).encrypted).toEqual(['ca/root-key.pem', 'ca/intermediate-key.pem'])
    expect(readFileSync(join(dir, 'data/ca/intermediate-key.pem'), 'utf8')).toContain(ENCRYPTED)
    expect((await cli(['doctor'], config, env)).code).toBe(0)
    expect((await cli(['admin-credential'], config)).code).toBe(1)
  }, 180_000)
})
