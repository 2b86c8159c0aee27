import { rmSync } from 'node:fs'
import { createServer, request, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { agentArgs, readOut, removeTempDirs, runAgent, tempDir } from '../helpers/agent.js'
import { LoopbackIssuer } from '../helpers/oidc/issuer.js'
import { gitlabClaims } from '../helpers/oidc/platforms.js'
import { issuerConfig } from '../helpers/oidc/server.js'
import { TestServer } from '../helpers/server.js'

// The CA may answer a renewal with "enrol again" (a lineage older than renewal.max_lineage):
// an agent with an OIDC token source then enrols again by itself. The CA here sits behind a
// front (a trusted proxy with the CA's own server credential, forwarding client certificates
// as RFC 9440 Client-Cert) that answers renewals with that problem, as the lineage work will.

let s: TestServer
let gitlab: LoopbackIssuer
let front: Server
let frontUrl = ''
let refuseRenewal: string | undefined

beforeAll(async () => {
  gitlab = await LoopbackIssuer.start()
  s = await TestServer.start({
    server: { trusted_proxies: ['127.0.0.2/32'] },
    federation: { oidc_issuers: [issuerConfig('gitlab', gitlab)] },
  })
  const tls = await s.serverCredential()
  front = createServer(
    { cert: tls.certPem, key: tls.keyPem, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', async () => {
        if (req.method === 'POST' && req.url === '/v1/renew' && refuseRenewal !== undefined) {
          const problem = {
            type: 'about:blank',
            title: 'Re-enrolment required',
            status: 403,
            detail: 'the lineage is older than renewal.max_lineage: enrol again',
            code: refuseRenewal,
          }
          return void res
            .writeHead(403, { 'content-type': 'application/problem+json' })
            .end(JSON.stringify(problem))
        }
        const headers = { ...req.headers }
        delete headers['client-cert']
        const peer = (req.socket as TLSSocket).getPeerCertificate()
        if (peer?.raw) headers['client-cert'] = `:${peer.raw.toString('base64')}:`
        // The front reaches the CA from 127.0.0.2, the only trusted proxy address.
        const { port } = new URL(s.url)
        const up = request(
          {
            host: '127.0.0.1',
            port,
            path: req.url,
            method: req.method,
            headers,
            ca: s.bundlePem,
            localAddress: '127.0.0.2',
            servername: 'localhost',
          },
          (r) => {
            res.writeHead(r.statusCode!, r.headers)
            r.pipe(res)
          },
        )
        up.end(Buffer.concat(chunks))
      })
    },
  )
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
  frontUrl = `https://127.0.0.1:${(front.address() as AddressInfo).port}`
})
afterAll(async () => {
  front?.closeAllConnections()
  await new Promise((r) => front?.close(r))
  await s?.close()
  await gitlab?.close()
  removeTempDirs()
})

describe('agent: a renewal answered "enrol again"', () => {
  it.each(['lineage_too_old', 'reenrol_required'])(
    'problem code %s: with an OIDC source the agent enrols again and publishes the new certificate',
    async (code) => {
      const spiffeId = `spiffe://example.org/agent-reenrol/${code}`
      await s.createEntry(spiffeId, {
        oidc: { issuer: 'gitlab', claims: { project_path: 'acme/api' } },
      })
      const out = join(tempDir(code), 'out')
      const args = [...agentArgs(s, spiffeId, out, frontUrl), '--once', '--oidc-token-env', 'TOKEN']
      const first = await runAgent(args, { TOKEN: await gitlab.mint(gitlabClaims()) })
      expect(first.code, first.stderr).toBe(0)
      const before = readOut(out).serial

      // Without the state, the receipt time is unknown: the agent renews at once.
      rmSync(join(out, '..state/agent.json'))
      refuseRenewal = code
      try {
        const second = await runAgent(args, { TOKEN: await gitlab.mint(gitlabClaims()) })
        expect(second.code, second.stderr).toBe(0)
        expect(second.lines.some((l) => /the CA asks for a new enrolment/.test(l.msg))).toBe(true)
      } finally {
        refuseRenewal = undefined
      }
      const after = readOut(out)
      expect(after.serial).not.toBe(before)
      expect(after.token['x5t#S256']).toBe(after.thumbprint)
    },
  )

  it('another refusal code is not taken for "enrol again": the agent reports it and stops', async () => {
    const spiffeId = 'spiffe://example.org/agent-reenrol/other'
    await s.createEntry(spiffeId, {
      oidc: { issuer: 'gitlab', claims: { project_path: 'acme/api' } },
    })
    const out = join(tempDir('other'), 'out')
    const args = [...agentArgs(s, spiffeId, out, frontUrl), '--once', '--oidc-token-env', 'TOKEN']
    expect((await runAgent(args, { TOKEN: await gitlab.mint(gitlabClaims()) })).code).toBe(0)
    rmSync(join(out, '..state/agent.json'))
    refuseRenewal = 'clone_suspected'
    try {
      const r = await runAgent(args, { TOKEN: await gitlab.mint(gitlabClaims()) })
      expect(r.code).toBe(3)
      expect(r.stderr).toMatch(/renew: 403/)
    } finally {
      refuseRenewal = undefined
    }
  })
})
