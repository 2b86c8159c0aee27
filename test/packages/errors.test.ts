import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENT_ERROR_CODES, ClientError, createBoundFetch } from '@certbound/client'
import { VERIFY_ERROR_CODES } from '@certbound/verifier'
import type { VerifyErrorCode } from '@certbound/verifier'
import type { CAErrorCode } from '../../src/errors.js'
import { createTestPki } from '../verifier/helpers/pki.js'
import type { Issued, TestPki } from '../verifier/helpers/pki.js'

const ROOT = join(import.meta.dirname, '../..')

// The verifier's codes for refusals the CA also makes carry the CA's names (checked by tsc).
const SAME_AS_CA = [
  'ERR_TOKEN_INVALID',
  'ERR_TOKEN_BINDING_MISMATCH',
  'ERR_CLIENT_CERT_REQUIRED',
] as const satisfies readonly (CAErrorCode & VerifyErrorCode)[]

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : []
  })
}

describe.each([
  { pkg: 'verifier', codes: VERIFY_ERROR_CODES },
  { pkg: 'client', codes: CLIENT_ERROR_CODES },
])('@certbound/$pkg has one error vocabulary, all of it in use', ({ pkg, codes }) => {
  const files = sources(join(ROOT, 'packages', pkg, 'src')).filter((f) => !f.endsWith('errors.ts'))
  const text = files.map((f) => readFileSync(f, 'utf8')).join('\n')

  it.each([...codes])('%s is thrown somewhere in the package', (code) => {
    expect(text).toContain(`'${code}'`)
  })

  it('no other ERR_ code appears in its source', () => {
    const used = new Set(text.match(/'ERR_[A-Z_]+'/g)?.map((s) => s.slice(1, -1)))
    expect([...used].filter((c) => !(codes as readonly string[]).includes(c))).toEqual([])
    expect(files.map((f) => relative(ROOT, f)).length).toBeGreaterThan(1)
  })
})

describe('@certbound/client codes', () => {
  let pki: TestPki
  let a: Issued
  let b: Issued
  let dir: string
  let n = 0

  beforeAll(() => {
    pki = createTestPki()
    a = pki.leaf('a')
    b = pki.leaf('b')
  })
  afterAll(() => pki?.cleanup())

  /** An agent --out directory whose `..data` points at one generation with these files. */
  function outDir(files: Record<string, string>): string {
    dir = mkdtempSync(join(tmpdir(), `certbound-client-${++n}-`))
    mkdirSync(join(dir, '..gen1'))
    for (const [name, content] of Object.entries(files)) {
      writeFileSync(join(dir, '..gen1', name), content)
    }
    symlinkSync('..gen1', join(dir, '..data'))
    return dir
  }
  const token = (extra: object = {}) =>
    JSON.stringify({
      access_token: 'header.payload.signature',
      token_type: 'Bearer',
      expires_at: new Date(Date.now() + 60_000).toISOString(),
      ...extra,
    })
  const complete = () => ({
    'chain.pem': a.chainPem,
    'key.pem': a.keyPem,
    'bundle.pem': pki.rootPem,
    'token.json': token({ 'x5t#S256': a.thumbprint }),
  })

  async function codeOf(files: Record<string, string> | undefined): Promise<string> {
    const target =
      files === undefined ? mkdtempSync(join(tmpdir(), 'certbound-client-')) : outDir(files)
    try {
      const bound = await createBoundFetch({ dir: target })
      await bound.close()
      return 'none'
    } catch (err) {
      expect(err).toBeInstanceOf(ClientError)
      return (err as ClientError).code
    } finally {
      rmSync(target, { recursive: true, force: true })
    }
  }

  it('a complete generation loads (the control)', async () => {
    expect(await codeOf(complete())).toBe('none')
  })

  it('ERR_GENERATION_MISSING: no ..data link, or a file of the generation missing', async () => {
    expect(await codeOf(undefined)).toBe('ERR_GENERATION_MISSING')
    const { 'key.pem': _key, ...noKey } = complete()
    expect(await codeOf(noKey)).toBe('ERR_GENERATION_MISSING')
    const { 'token.json': _token, ...noToken } = complete()
    expect(await codeOf(noToken)).toBe('ERR_GENERATION_MISSING')
  })

  it('ERR_GENERATION_INVALID: a file that does not parse', async () => {
    expect(await codeOf({ ...complete(), 'token.json': '{"access_token":' })).toBe(
      'ERR_GENERATION_INVALID',
    )
    expect(await codeOf({ ...complete(), 'token.json': 'null' })).toBe('ERR_GENERATION_INVALID')
    expect(await codeOf({ ...complete(), 'token.json': token({ token_type: 'DPoP' }) })).toBe(
      'ERR_GENERATION_INVALID',
    )
    expect(await codeOf({ ...complete(), 'key.pem': 'not a key' })).toBe('ERR_GENERATION_INVALID')
    expect(await codeOf({ ...complete(), 'chain.pem': 'not a certificate' })).toBe(
      'ERR_GENERATION_INVALID',
    )
  })

  it('ERR_GENERATION_MISMATCH: a key or a token of another certificate', async () => {
    expect(await codeOf({ ...complete(), 'key.pem': b.keyPem })).toBe('ERR_GENERATION_MISMATCH')
    expect(await codeOf({ ...complete(), 'token.json': token({ 'x5t#S256': b.thumbprint }) })).toBe(
      'ERR_GENERATION_MISMATCH',
    )
  })

  it('the verifier codes shared with the CA are listed', () => {
    expect(VERIFY_ERROR_CODES).toEqual(expect.arrayContaining([...SAME_AS_CA]))
  })
})
