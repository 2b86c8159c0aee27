import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agentArgs, readOut, removeTempDirs, runAgent, tempDir } from '../helpers/agent.js'
import { TestServer } from '../helpers/server.js'

/*
 * Issue 7, weakness 5: the agent followed a planted `--out/..state` symlink (mkdir and chmod
 * follow links) and accepted a `..state` of another user. These run the real agent process.
 * Running as root lets the tests make entries owned by another user (uid 65534, "nobody").
 */
const root = process.getuid?.() === 0
const OTHER = 65534

describe('the agent in a shared --out', () => {
  let s: TestServer
  let n = 0
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(async () => {
    removeTempDirs()
    await s.close()
  })

  async function workload() {
    const spiffeId = `spiffe://example.org/outdir/${++n}`
    const token = await s.joinToken(await s.createEntry(spiffeId))
    const out = join(tempDir('shared'), 'out')
    return { spiffeId, token, out, args: agentArgs(s, spiffeId, out) }
  }

  it('refuses a ..state that is a symbolic link, and writes nothing through it', async () => {
    const { token, out, args } = await workload()
    const victim = join(tempDir('victim'), 'dir')
    mkdirSync(victim, { mode: 0o755 })
    mkdirSync(out, { recursive: true })
    symlinkSync(victim, join(out, '..state'))
    const r = await runAgent([...args, '--join-token', token, '--once'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/\.\.state is a symbolic link: refusing to keep the refresh token/)
    expect(readdirSync(victim)).toEqual([])
    expect(statSync(victim).mode & 0o777).toBe(0o755)
    // Nothing was sent either: the join token still enrols once the link is gone.
    expect(lstatSync(join(out, '..state')).isSymbolicLink()).toBe(true)
    const { rmSync } = await import('node:fs')
    rmSync(join(out, '..state'))
    const ok = await runAgent([...args, '--join-token', token, '--once'])
    expect(ok.code, ok.stderr).toBe(0)
  })

  it.runIf(root)('refuses a ..state that another user owns', async () => {
    const { token, out, args } = await workload()
    mkdirSync(join(out, '..state'), { recursive: true, mode: 0o700 })
    chownSync(join(out, '..state'), OTHER, OTHER)
    const r = await runAgent([...args, '--join-token', token, '--once'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(new RegExp(`\\.\\.state belongs to uid ${OTHER}, not to this agent`))
    expect(readdirSync(join(out, '..state'))).toEqual([])
  })

  it('refuses a ..state that is a file', async () => {
    const { token, out, args } = await workload()
    mkdirSync(out, { recursive: true })
    writeFileSync(join(out, '..state'), 'planted')
    const r = await runAgent([...args, '--join-token', token, '--once'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/\.\.state is not a directory/)
  })

  it.runIf(root)(
    'works in a 0777 --out of another user (an emptyDir), leaving its mode',
    async () => {
      const { token, out, args } = await workload()
      mkdirSync(out, { recursive: true })
      chownSync(out, OTHER, OTHER)
      chmodSync(out, 0o777)
      // Leftovers under the old fixed temporary names, pointing elsewhere: not followed.
      const decoy = join(tempDir('decoy'), 'file')
      writeFileSync(decoy, 'decoy')
      symlinkSync(decoy, join(out, '..data.tmp'))
      const r = await runAgent([...args, '--join-token', token, '--once'])
      expect(r.code, r.stderr).toBe(0)
      const st = statSync(out)
      expect([st.mode & 0o777, st.uid]).toEqual([0o777, OTHER])
      expect(statSync(join(out, '..state')).mode & 0o777).toBe(0o700)
      expect(statSync(join(out, '..state/agent.json')).mode & 0o777).toBe(0o600)
      expect(statSync(join(out, 'key.pem')).mode & 0o777).toBe(0o600)
      expect(readOut(out).token.access_token).toBeTruthy()
      expect(readFileSync(decoy, 'utf8')).toBe('decoy')
      // No temporary name of ours is left behind.
      expect(readdirSync(out).filter((e) => /\.tmp$/.test(e))).toEqual(['..data.tmp'])
      expect(readdirSync(join(out, '..state'))).toEqual(['agent.json'])
    },
  )
})
