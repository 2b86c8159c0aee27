import {
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import {
  currentGeneration,
  readCurrentGeneration,
  stageGeneration,
} from '../../src/agent/out-dir.js'
import { loadState, saveState } from '../../src/agent/state.js'
import { removeTempDirs, tempDir } from '../helpers/agent.js'

afterAll(() => removeTempDirs())

const files = (n: number) => ({
  'cert.pem': `cert ${n}\n`,
  'chain.pem': `chain ${n}\n`,
  'bundle.pem': `bundle ${n}\n`,
  'key.pem': `key ${n}\n`,
  'token.json': `{"n":${n}}\n`,
})

describe('the output directory (AtomicWriter)', () => {
  it('stages a generation invisibly, then switches ..data and the stable links to it', async () => {
    const out = join(tempDir('outdir'), 'out')
    const staged = await stageGeneration(out, files(1))
    expect(await currentGeneration(out)).toBeUndefined()
    expect(readdirSync(out)).toEqual([staged.name])
    await staged.commit()
    expect(readlinkSync(join(out, '..data'))).toBe(staged.name)
    for (const f of Object.keys(files(1))) {
      expect(readlinkSync(join(out, f))).toBe(`..data/${f}`)
      expect(readFileSync(join(out, f), 'utf8')).toBe(files(1)[f as 'cert.pem'])
    }
    expect(statSync(join(out, 'key.pem')).mode & 0o777).toBe(0o600)
    expect(statSync(join(out, 'token.json')).mode & 0o777).toBe(0o600)
    expect(statSync(join(out, 'cert.pem')).mode & 0o777).toBe(0o644)
    expect(await readCurrentGeneration(out)).toEqual({ name: staged.name, files: files(1) })
  })

  it('keeps the current and the previous generation, prunes the rest, leaves foreign entries', async () => {
    const out = join(tempDir('outdir'), 'out')
    mkdirSync(join(out, 'mine'), { recursive: true })
    const names: string[] = []
    for (let i = 1; i <= 4; i++) {
      const staged = await stageGeneration(out, files(i))
      await staged.commit()
      names.push(staged.name)
    }
    const generations = readdirSync(out)
      .filter((e) => /^\.\.\d/.test(e))
      .sort()
    expect(generations).toEqual(names.slice(2).sort())
    expect(lstatSync(join(out, 'mine')).isDirectory()).toBe(true)
    expect(readdirSync(out)).not.toContain('..data.tmp')
    expect(readFileSync(join(out, 'cert.pem'), 'utf8')).toBe('cert 4\n')
  })

  it('omits token.json when asked (the stable link then dangles rather than mislead)', async () => {
    const out = join(tempDir('outdir'), 'out')
    const { 'token.json': _token, ...rest } = files(1)
    await (await stageGeneration(out, rest)).commit()
    expect(lstatSync(join(out, 'token.json')).isSymbolicLink()).toBe(true)
    expect(() => readFileSync(join(out, 'token.json'))).toThrow(/ENOENT/)
    expect((await readCurrentGeneration(out))?.files['token.json']).toBeUndefined()
  })

  it('writes crl.der as bytes and, with a file access, gives every file the group and key.pem its mode', async () => {
    const out = join(tempDir('outdir'), 'out')
    const der = Uint8Array.from([0x30, 0x82, 0xff, 0x00, 0x80])
    const gid = process.getuid?.() === 0 ? 4242 : process.getgid!()
    const access = { group: gid, keyMode: 0o640 }
    const staged = await stageGeneration(out, { ...files(1), 'crl.der': der }, { access })
    await staged.commit()
    expect(readFileSync(join(out, 'crl.der')).equals(Buffer.from(der))).toBe(true)
    expect(statSync(join(out, 'key.pem')).mode & 0o777).toBe(0o640)
    expect(statSync(join(out, 'token.json')).mode & 0o777).toBe(0o600)
    for (const f of ['key.pem', 'cert.pem', 'crl.der', 'token.json'])
      expect(statSync(join(out, f)).gid, f).toBe(gid)
    // The binary file is not read back as text.
    expect(Object.keys((await readCurrentGeneration(out))!.files)).not.toContain('crl.der')
  })
})

describe('the state file', () => {
  it('is written atomically, 0600 in a 0700 directory, and read back', async () => {
    const out = join(tempDir('state'), 'out')
    const problems: string[] = []
    expect(await loadState(out, (p) => problems.push(p))).toEqual({})
    const state = {
      refresh_token: 'secret',
      certificate: { thumbprint: 't', serial: '01', received_at: new Date(0).toISOString() },
    }
    await saveState(out, state)
    expect(statSync(join(out, '..state')).mode & 0o777).toBe(0o700)
    expect(statSync(join(out, '..state/agent.json')).mode & 0o777).toBe(0o600)
    expect(await loadState(out, (p) => problems.push(p))).toEqual(state)
    writeFileSync(join(out, '..state/agent.json'), '{not json')
    expect(await loadState(out, (p) => problems.push(p))).toEqual({})
    expect(problems).toHaveLength(1)
  })
})
