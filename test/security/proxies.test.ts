import { X509Certificate } from 'node:crypto'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestServer, type Credential } from '../helpers/server.js'
import { expectOAuthError, oauth, thumbprintOf } from '../helpers/tokens.js'
import { verifyWithServedJwks } from '../helpers/tokens.js'

/** server.trusted_proxy_ids and server.proxy_admin: a proxy is more than its address. */
const PROXY = '127.0.0.2'
const PROXY_ID = 'spiffe://example.org/edge-proxy'

const viaProxy = (s: TestServer, cred?: { certPem: string; keyPem: string }) =>
  new Agent({
    localAddress: PROXY,
    connect: { ca: s.bundlePem, ...(cred ? { cert: cred.certPem, key: cred.keyPem } : {}) },
  })
const cc = (pem: string) => ({
  'client-cert': `:${new X509Certificate(pem).raw.toString('base64')}:`,
})

describe('trusted proxies by identity, not address alone', () => {
  let s: TestServer
  let proxyCred: Credential & { entryId: string }
  let workload: Credential
  beforeAll(async () => {
    s = await TestServer.start({
      server: { trusted_proxies: [PROXY], trusted_proxy_ids: [PROXY_ID] },
    })
    proxyCred = await s.enroll(PROXY_ID)
    workload = await s.enroll('spiffe://example.org/behind-the-proxy')
  })
  afterAll(() => s.close())

  const tokenVia = async (cred: { certPem: string; keyPem: string } | undefined) => {
    const agent = viaProxy(s, cred)
    try {
      return await oauth(
        s,
        '/oauth/token',
        agent,
        { grant_type: 'client_credentials' },
        cc(workload.certPem),
      )
    } finally {
      await agent.close()
    }
  }

  it('the proxy with its own certificate of a listed ID: the forwarded certificate counts', async () => {
    const r = await tokenVia(proxyCred)
    expect(r.status, r.text).toBe(200)
    const { payload } = await verifyWithServedJwks(s, r.body.access_token)
    expect(payload.cnf).toEqual({ 'x5t#S256': thumbprintOf(workload.certPem) })
  })

  it('from the proxy address without a certificate, or with another identity’s: refused', async () => {
    const other = await s.enroll('spiffe://example.org/not-the-proxy')
    for (const cred of [undefined, other]) {
      const r = await tokenVia(cred)
      expectOAuthError(r, 401, 'invalid_client')
      expect(r.body.error_description).toMatch(/server\.trusted_proxy_ids/)
    }
  })

  it('a revoked proxy certificate: refused', async () => {
    const revoked = await s.enroll(PROXY_ID, { entryId: proxyCred.entryId })
    const r = await s.call('POST', `/v1/certificates/${revoked.serial}/revoke`, {
      as: s.admin,
      json: {},
    })
    expect(r.status).toBe(200)
    expectOAuthError(await tokenVia(revoked), 401, 'invalid_client')
  })

  it('forwarded identities never count on admin routes by default', async () => {
    const agent = viaProxy(s, proxyCred)
    try {
      const r = await s.call('GET', '/v1/entries', { agent, headers: cc(s.admin.certPem) })
      expect(r.status, r.text).toBe(403)
      expect(r.body.detail).toMatch(/server\.proxy_admin/)
    } finally {
      await agent.close()
    }
  })
})

describe('server.proxy_admin: true', () => {
  it('lets a forwarded admin certificate use the admin API', async () => {
    const s = await TestServer.start({ server: { trusted_proxies: [PROXY], proxy_admin: true } })
    const agent = viaProxy(s)
    try {
      const r = await s.call('GET', '/v1/entries', { agent, headers: cc(s.admin.certPem) })
      expect(r.status, r.text).toBe(200)
    } finally {
      await agent.close()
      await s.close()
    }
  })
})
