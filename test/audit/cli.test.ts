import { execFile, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifierKey } from '../../src/audit/note.js'
import { TestServer, type Credential } from '../helpers/server.js'
import {
  inclusionVerifies,
  leafHashOf,
  openSignedNote,
  readCheckpoint,
} from './independent-check.js'
import { rawRun } from './raw.js'

const CLI = join(process.cwd(), 'src/cli/index.ts')
const CHECK = join(process.cwd(), 'docs/audit-check.py')

interface Run {
  code: number
  stdout: string
  stderr: string
}

describe('certbound audit verify | export | prove (real processes), and the documented check', () => {
  let s: TestServer
  let dir: string
  let config: string
  let cert: Credential
  let vkeyFile: string
  const cli = (...args: string[]) =>
    new Promise<Run>((resolve) => {
      const env = { ...process.env }
      delete env.CERTBOUND_CONFIG
      execFile(
        process.execPath,
        ['--import', 'tsx', CLI, '--config', config, 'audit', ...args],
        { env, timeout: 60_000 },
        (error, stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      )
    })
  const check = (...args: string[]) =>
    spawnSync('python3', [CHECK, ...args], { encoding: 'utf8', timeout: 30_000 })

  beforeAll(async () => {
    s = await TestServer.start()
    dir = mkdtempSync(join(tmpdir(), 'certbound-audit-cli-'))
    config = join(dir, 'ca-config.yaml')
    writeFileSync(
      config,
      stringify({
        trust_domain: 'example.org',
        data_dir: s.dataDir,
        log_level: 'silent',
        ...(s.databaseUrl ? { database: { url: s.databaseUrl } } : {}),
      }),
    )
    cert = await s.enroll('spiffe://example.org/audit/cli')
    vkeyFile = join(dir, 'audit.vkey')
    writeFileSync(vkeyFile, (await s.call('GET', '/v1/audit/key')).text)
  })
  afterAll(async () => {
    await s.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('prove SERIAL: a proof the documented procedure (docs/audit-check.py) accepts, and only that one', async () => {
    // The enrolment just happened: prove appends what the checkpointer has not yet.
    const r = await cli('prove', cert.serial)
    expect(r.code, r.stderr).toBe(0)
    const proof = JSON.parse(r.stdout)
    expect(proof).toMatchObject({ serial: cert.serial, leaf_index: expect.any(Number) })
    const files = (p: unknown, name: string) => {
      const f = join(dir, name)
      writeFileSync(f, JSON.stringify(p))
      return f
    }
    const certFile = join(dir, 'cert.pem')
    writeFileSync(certFile, cert.certPem)
    const ok = check(files(proof, 'proof.json'), vkeyFile, certFile)
    expect(ok.status, ok.stderr).toBe(0)
    expect(ok.stdout).toMatch(
      new RegExp(`^certificate.enroll ${cert.serial}: leaf \\d+ of \\d+ in \\S+/v1/audit: OK`),
    )
    // Each changed piece is refused: the event, the proof, the signature, another certificate.
    const other = join(dir, 'other.pem')
    writeFileSync(other, s.admin.certPem)
    const refused = [
      check(
        files({ ...proof, leaf_data: proof.leaf_data.replace('"v":1', '"v":2') }, 'a.json'),
        vkeyFile,
      ),
      check(
        files({ ...proof, leaf_index: Math.max(0, proof.leaf_index - 1) || 1 }, 'b.json'),
        vkeyFile,
      ),
      check(
        files({ ...proof, inclusion_proof: proof.inclusion_proof.slice(1) }, 'c.json'),
        vkeyFile,
      ),
      check(
        files({ ...proof, checkpoint: proof.checkpoint.replace(/\n\d+\n/, '\n1\n') }, 'd.json'),
        vkeyFile,
      ),
      check(files(proof, 'e.json'), vkeyFile, other),
    ]
    expect(refused.map((x) => x.status)).toEqual([1, 1, 1, 1, 1])
    const why = refused.map((x) => x.stderr.trim().split(': ')[1])
    expect(why).toEqual([
      'the leaf hash is not the hash of the leaf data',
      // Another place in the tree needs another path (of another length, at the tree's edge).
      expect.stringMatching(
        /^the (inclusion proof does not lead to the signed root|proof is too (short|long))$/,
      ),
      'the proof is too short',
      "the checkpoint's signature does not verify",
      'the logged event names another certificate',
    ])

    const bad = await cli('prove', 'not-hex')
    expect([bad.code, bad.stderr]).toEqual([
      1,
      'certbound: not-hex is not a certificate serial (hex)\n',
    ])
    const unknown = await cli('prove', '0123')
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/no issuance of certificate 0123 is in the audit log/)
  })

  it('export: JSON lines, the signed checkpoint first, then every event with a proof that verifies', async () => {
    const out = join(dir, 'audit.jsonl')
    const r = await cli('export', '--out', out)
    expect(r.code, r.stderr).toBe(0)
    const [header, ...lines] = readFileSync(out, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l))
    const c = readCheckpoint(openSignedNote(header.checkpoint, readFileSync(vkeyFile, 'utf8')))
    expect(lines.map((l) => l.leaf_index)).toEqual(lines.map((_, i) => i))
    expect(lines).toHaveLength(c.size)
    for (const l of lines) {
      const proof = l.inclusion_proof.map((p: string) => Buffer.from(p, 'base64'))
      expect(
        inclusionVerifies(
          l.leaf_index,
          c.size,
          leafHashOf(Buffer.from(l.leaf_data)),
          proof,
          c.root,
        ),
      ).toBe(true)
    }
    expect((await cli('export', '--out', out)).stderr).toMatch(/EEXIST/) // never overwrites
  })

  it('verify: exit 0 on an intact log; exit 1 naming the first event that does not verify', async () => {
    const origin = readFileSync(vkeyFile, 'utf8').split('+')[0]!
    const good = await cli('verify', '--verifier-key', vkeyFile)
    expect(good.code, good.stderr).toBe(0)
    expect(JSON.parse(good.stdout)).toMatchObject({ ok: true, pending: 0 })
    const [e] = await s.query('SELECT * FROM audit_events WHERE leaf_index = 3')
    await rawRun(s, 'UPDATE audit_events SET actor = ? WHERE id = ?', 'mallory', e.id)
    try {
      const bad = await cli('verify')
      expect(bad.code).toBe(1)
      expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, leaf_index: 3, event_id: e.id })
      expect(bad.stderr).toBe(
        `certbound: the audit log does not verify: event ${e.id} (${e.action}${e.subject ? ` ${e.subject}` : ''}) at leaf 3 does not match the leaf hash logged there: changed or moved after it was logged\n`,
      )
    } finally {
      await rawRun(s, 'UPDATE audit_events SET actor = ? WHERE id = ?', e.actor, e.id)
    }
    const refused = await cli('verify', '--verifier-key', verifierKey(origin, Buffer.alloc(32, 5)))
    expect(refused.code).toBe(1)
    expect(JSON.parse(refused.stdout).problem).toBe(
      'the log key in the database is not the given verifier key',
    )
  })
})
