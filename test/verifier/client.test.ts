import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { ClientError, createBoundFetch } from '@certbound/client'
import type { BoundFetch } from '@certbound/client'
import { createVerifier } from '@certbound/verifier'
import type { Verifier } from '@certbound/verifier'
import { startIssuer } from './helpers/issuer.js'
import type { FixtureIssuer } from './helpers/issuer.js'
import { createTestPki } from './helpers/pki.js'
import type { Issued, TestPki } from './helpers/pki.js'
import { startResourceServer } from './helpers/rs.js'
import type { ResourceServer } from './helpers/rs.js'

let pki: TestPki
let issuer: FixtureIssuer
let rs: ResourceServer
let verifier: Verifier
let out: string
let generation = 0

const FILES = ['cert.pem', 'key.pem', 'chain.pem', 'bundle.pem', 'token.json']

/** Writes a generation and switches `..data` to it atomically, as `certbound agent --out` does. */
async function rotate(holder: Issued, tokenFor: Issued = holder): Promise<string> {
  const name = `..gen${++generation}`
  const dir = join(out, name)
  mkdirSync(dir)
  const token = {
    access_token: await issuer.mint(tokenFor),
    token_type: 'Bearer',
    expires_at: new Date(Date.now() + 300_000).toISOString(),
    'x5t#S256': tokenFor.thumbprint,
  }
  writeFileSync(join(dir, 'cert.pem'), holder.certPem)
  writeFileSync(join(dir, 'key.pem'), holder.keyPem, { mode: 0o600 })
  writeFileSync(join(dir, 'chain.pem'), holder.chainPem)
  writeFileSync(join(dir, 'bundle.pem'), pki.rootPem)
  writeFileSync(join(dir, 'token.json'), JSON.stringify(token))
  symlinkSync(name, join(out, '..data.tmp'))
  renameSync(join(out, '..data.tmp'), join(out, '..data'))
  return name
}

beforeAll(async () => {
  pki = createTestPki()
  issuer = await startIssuer(pki)
  verifier = createVerifier({
    issuer: issuer.url,
    audience: issuer.url,
    trustAnchors: pki.rootPem,
  })
  rs = await startResourceServer(pki, { api: { verifier, logger: { warn: () => {} } } })
  out = mkdtempSync(join(tmpdir(), 'certbound-agent-out-'))
  await rotate(pki.leaf('a'))
  for (const f of FILES) symlinkSync(join('..data', f), join(out, f))
})

afterAll(async () => {
  await rs?.close()
  await verifier?.close()
  await issuer?.close()
  if (out) rmSync(out, { recursive: true, force: true })
  pki?.cleanup()
})

async function whoami(bound: BoundFetch) {
  const res = await bound.fetch(`${rs.url}/api/whoami`)
  return { status: res.status, body: (await res.json()) as Record<string, string> }
}

describe('createBoundFetch', () => {
  it('presents the current certificate and token, and follows rotations without a restart', async () => {
    const [a, b, c] = [pki.leaf('a'), pki.leaf('b'), pki.leaf('c')]
    const reloaded: string[] = []
    const bound = await createBoundFetch({
      dir: out,
      reloadIntervalMs: 50,
      onReload: (g) => reloaded.push(g.thumbprint),
    })
    try {
      expect(await whoami(bound)).toEqual({
        status: 200,
        body: { sub: a.spiffeId, thumbprint: a.thumbprint, source: 'tls' },
      })
      // a second connection resumes the TLS session: the server sees the leaf, not the chain
      expect((await whoami(bound)).status).toBe(200)

      await rotate(b)
      expect((await bound.reload()).thumbprint).toBe(b.thumbprint)
      // a new token on an old pooled connection would be refused: the pool was swapped too
      expect(await whoami(bound)).toEqual({
        status: 200,
        body: { sub: b.spiffeId, thumbprint: b.thumbprint, source: 'tls' },
      })

      await rotate(c) // picked up by fs.watch / polling
      await vi.waitFor(() => expect(bound.current().thumbprint).toBe(c.thumbprint), {
        timeout: 2_000,
      })
      expect((await whoami(bound)).body.thumbprint).toBe(c.thumbprint)
      expect(reloaded).toEqual([b.thumbprint, c.thumbprint])
      expect((await bound.reload()).thumbprint).toBe(c.thumbprint)
    } finally {
      await bound.close()
    }
    const closed = await bound.fetch(`${rs.url}/api/whoami`).catch((e: unknown) => e)
    expect(closed).toBeInstanceOf(ClientError)
    expect((closed as ClientError).code).toBe('ERR_CLIENT_CLOSED')
  })

  it('keeps the previous generation when a new one is inconsistent', async () => {
    const [a, d] = [pki.leaf('a'), pki.leaf('d')]
    await rotate(a)
    const errors: unknown[] = []
    const bound = await createBoundFetch({
      dir: out,
      reloadIntervalMs: 60_000,
      onError: (e) => errors.push(e),
    })
    try {
      await rotate(d, a) // d's certificate with a token bound to a
      expect((await bound.reload()).thumbprint).toBe(a.thumbprint)
      expect(errors[0]).toBeInstanceOf(ClientError)
      expect((errors[0] as ClientError).code).toBe('ERR_GENERATION_MISMATCH')
      expect(bound.current().thumbprint).toBe(a.thumbprint)
      expect((await whoami(bound)).body.thumbprint).toBe(a.thumbprint)
    } finally {
      await bound.close()
    }
  })

  it('refuses to start without a complete generation', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'certbound-agent-empty-'))
    try {
      await expect(createBoundFetch({ dir: empty })).rejects.toMatchObject({
        name: 'ClientError',
        code: 'ERR_GENERATION_MISSING',
      })
    } finally {
      rmSync(empty, { recursive: true, force: true })
    }
  })
})
