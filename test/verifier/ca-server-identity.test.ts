import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVerifier, VerifyError } from '@certbound/verifier'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { agentArgs, runAgent, tempDir } from '../agent/helpers.js'
import { grant } from '../tokens/helpers.js'

/**
 * A workload whose entry allows `localhost` holds a certificate of this CA valid for the CA
 * server's own hostname. Our clients of the CA (agent, admin CLI, verifier) must still tell it
 * from the CA: the CA server's certificate is the only one without a SPIFFE ID.
 */
describe('a workload certificate for the CA server’s hostname does not pass as the CA', () => {
  let s: TestServer
  let impostor: Server
  let impostorUrl: string
  let realUrl: string
  const seen: { path: string; authorization?: string }[] = []

  beforeAll(async () => {
    s = await TestServer.start()
    realUrl = `https://localhost:${s.running.address.port}`
    const spiffeId = 'spiffe://example.org/impostor'
    const entryId = await s.createEntry(spiffeId, { dns_names: ['localhost'] })
    const token = await s.joinToken(entryId)
    const { csrPem, keyPem } = makeCsr({ san: `URI:${spiffeId},DNS:localhost` })
    const r = await s.call('POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${token}` },
      json: { csr: csrPem },
    })
    expect(r.status, r.text).toBe(201)
    // It serves the real JWKS (so only the server identity check can tell) and records requests.
    const jwks = (await s.call('GET', '/.well-known/jwks.json')).text
    impostor = createServer({ cert: r.body.chain, key: keyPem }, (req, res) => {
      seen.push({ path: req.url ?? '', authorization: req.headers.authorization })
      res.setHeader('content-type', 'application/json')
      res.end(req.url === '/.well-known/jwks.json' ? jwks : '{}')
    })
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve))
    impostorUrl = `https://localhost:${(impostor.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    await new Promise((resolve) => impostor.close(resolve))
    await s.close()
  })

  it('the verifier fetches the JWKS from the CA, and refuses the impostor', async () => {
    const client = await s.enroll('spiffe://example.org/verifier-client')
    const { access_token } = await grant(s, client)
    const options = {
      issuer: s.config.tokens.issuer,
      audience: [...s.config.tokens.audience],
      trustAnchors: s.bundlePem,
      intermediates: s.intermediatePem,
    }
    const real = createVerifier({ ...options, jwksUri: `${realUrl}/.well-known/jwks.json` })
    expect((await real.verify(access_token, client.certPem)).claims.sub).toBe(
      'spiffe://example.org/verifier-client',
    )
    const fooled = createVerifier({ ...options, jwksUri: `${impostorUrl}/.well-known/jwks.json` })
    const err = await fooled.verify(access_token, client.certPem).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(VerifyError)
    expect(seen.filter((r) => r.path.includes('jwks'))).toEqual([])
  })

  it('the agent does not send its join token to the impostor; against the CA it enrols', async () => {
    const spiffeId = 'spiffe://example.org/agent-victim'
    const token = await s.joinToken(await s.createEntry(spiffeId))
    const out = join(tempDir('impostor'), 'out')
    const fooled = await runAgent([
      ...agentArgs(s, spiffeId, out, impostorUrl),
      '--join-token',
      token,
      '--once',
    ])
    expect(fooled.code).not.toBe(0)
    expect(fooled.stderr).toMatch(/not the certbound server/)
    expect(seen.some((r) => r.authorization?.includes(token))).toBe(false)
    const ok = await runAgent([
      ...agentArgs(s, spiffeId, out, realUrl),
      '--join-token',
      token,
      '--once',
    ])
    expect(ok.code, ok.stderr).toBe(0)
  })

  it('the admin CLI sends no request to the impostor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'certbound-impostor-cli-'))
    try {
      const config = join(dir, 'ca-config.yaml')
      writeFileSync(config, `trust_domain: example.org\ndata_dir: ${s.dataDir}\n`)
      const run = (server: string) =>
        new Promise<{ code: number; stderr: string }>((resolve) => {
          execFile(
            process.execPath,
            ['--import', 'tsx', 'src/cli/index.ts', '--config', config, 'entry', 'list'],
            { env: { ...process.env, CERTBOUND_SERVER: server }, timeout: 30_000 },
            (error, _stdout, stderr) =>
              resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr }),
          )
        })
      const before = seen.length
      const fooled = await run(impostorUrl)
      expect(fooled.code).not.toBe(0)
      expect(fooled.stderr).toMatch(/not the certbound server/)
      expect(seen.length).toBe(before)
      const ok = await run(realUrl)
      expect(ok.code, ok.stderr).toBe(0)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
