import { createHash } from 'node:crypto'
import type { Agent } from 'undici'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { certboundAuth } from '@certbound/verifier/hono'
import { createVerifier } from '@certbound/verifier'
import type { Verifier } from '@certbound/verifier'
import { startIssuer } from './helpers/issuer.js'
import type { FixtureIssuer } from './helpers/issuer.js'
import { createTestPki } from './helpers/pki.js'
import type { Issued, TestPki } from './helpers/pki.js'
import { call, clientAgent, startResourceServer } from './helpers/rs.js'
import type { ResourceServer } from './helpers/rs.js'

let pki: TestPki
let issuer: FixtureIssuer
let rs: ResourceServer
let verifier: Verifier
let online: Verifier
let bare: Verifier
let a: Issued
let b: Issued
let c: Issued
const agents: Record<'none' | 'a' | 'b' | 'c' | 'rogue', Agent> = {} as never
const warnings: Record<string, unknown>[] = []
const logger = { warn: (obj: Record<string, unknown>) => void warnings.push(obj) }

// The three forwarding formats, as a proxy would write them for `holder`.
const clientCert = (holder: Issued) => ({
  'client-cert': `:${holder.certificate.raw.toString('base64')}:`,
})
const xfccElement = (holder: Issued) => {
  const hash = createHash('sha256').update(holder.certificate.raw).digest('hex')
  const cert = encodeURIComponent(holder.certPem)
  return `By=spiffe://example.org/proxy;Hash=${hash};Cert="${cert}";Subject="O=example.org,CN=x;y";URI=${holder.spiffeId}`
}
const xfcc = (holder: Issued, earlier = '') => ({
  'x-forwarded-client-cert': earlier + xfccElement(holder),
})
const escapedPem = (holder: Issued) => ({ 'x-ssl-client-cert': encodeURIComponent(holder.certPem) })
const formats = {
  'Client-Cert (RFC 9440)': clientCert,
  XFCC: xfcc,
  'escaped PEM (nginx)': escapedPem,
}

beforeAll(async () => {
  pki = createTestPki()
  ;[a, b, c] = [pki.leaf('a'), pki.leaf('b'), pki.leaf('c')]
  const rsCert = pki.leaf('rs')
  issuer = await startIssuer(pki)
  const options = {
    issuer: issuer.url,
    audience: issuer.url,
    trustAnchors: pki.rootPem,
    intermediates: pki.intermediatePem,
  }
  verifier = createVerifier(options)
  bare = createVerifier({ ...options, intermediates: undefined })
  online = createVerifier({
    ...options,
    introspection: { cert: rsCert.chainPem, key: rsCert.keyPem, cacheTtlMs: 100 },
  })
  rs = await startResourceServer(pki, {
    direct: { verifier, logger, realm: 'test' },
    bare: { verifier: bare, logger },
    proxied: { verifier, logger, trustedProxies: ['10.0.0.0/8', '127.0.0.1'] },
    otherproxy: { verifier, logger, trustedProxies: ['10.1.2.3', '::1/128'] },
    xfcconly: { verifier, logger, trustedProxies: ['127.0.0.0/8'], forwardedFormats: ['xfcc'] },
    online: { verifier: online, logger },
    scoped: { verifier, logger, requiredScopes: ['write'] },
  })
  agents.none = clientAgent(pki)
  agents.a = clientAgent(pki, a)
  agents.b = clientAgent(pki, b)
  agents.c = clientAgent(pki, c)
  agents.rogue = clientAgent(pki, pki.rogue)
})

afterAll(async () => {
  await Promise.all(Object.values(agents).map((x) => x.close()))
  await rs?.close()
  await Promise.all([verifier?.close(), online?.close(), bare?.close()])
  await issuer?.close()
  pki?.cleanup()
})

function expectInvalidToken(res: Awaited<ReturnType<typeof call>>, description?: RegExp) {
  expect(res.status).toBe(401)
  expect(res.challenge).toMatch(
    /^Bearer (realm="test", )?error="invalid_token", error_description="/,
  )
  expect(res.body?.error).toBe('invalid_token')
  if (description) expect(res.body?.error_description).toMatch(description)
}

describe('certboundAuth over TLS', () => {
  it('accepts the bound certificate and exposes claims to handlers', async () => {
    const res = await call(`${rs.url}/direct/x`, agents.a, await issuer.mint(a))
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ sub: a.spiffeId, thumbprint: a.thumbprint, source: 'tls' })
  })

  it('builds the path with the intermediate the client sent in the handshake', async () => {
    const res = await call(`${rs.url}/bare/x`, agents.a, await issuer.mint(a))
    expect(res.body).toMatchObject({ source: 'tls' })
  })

  it('rejects the token with another certificate', async () => {
    const res = await call(`${rs.url}/direct/x`, agents.b, await issuer.mint(a))
    expectInvalidToken(res, /another certificate/)
  })

  it('rejects the token without a certificate', async () => {
    const res = await call(`${rs.url}/direct/x`, agents.none, await issuer.mint(a))
    expectInvalidToken(res, /no client certificate/)
  })

  it('answers 401 with a bare challenge when there is no token', async () => {
    const res = await call(`${rs.url}/direct/x`, agents.a)
    expect(res.status).toBe(401)
    expect(res.challenge).toBe('Bearer realm="test"')
    const basic = await call(`${rs.url}/direct/x`, agents.a, undefined, {
      authorization: 'Basic eDp5',
    })
    expect(basic.status).toBe(401)
  })

  it('rejects a certificate that the TLS layer let through but does not chain to the anchors', async () => {
    const res = await call(`${rs.url}/direct/x`, agents.rogue, await issuer.mint(pki.rogue))
    expectInvalidToken(res, /chain/)
  })

  it('rejects wrong aud, wrong iss and expired tokens with invalid_token', async () => {
    for (const opts of [
      { claims: { aud: 'https://elsewhere' } },
      { claims: { iss: 'https://elsewhere' } },
      { expiresIn: -120 },
    ]) {
      expectInvalidToken(await call(`${rs.url}/direct/x`, agents.a, await issuer.mint(a, opts)))
    }
  })

  it('answers 403 insufficient_scope for a valid token without the required scope', async () => {
    const res = await call(`${rs.url}/scoped/x`, agents.a, await issuer.mint(a))
    expect(res.status).toBe(403)
    expect(res.challenge).toMatch(
      /error="insufficient_scope", error_description="[^"]+", scope="write"$/,
    )
    const ok = await call(
      `${rs.url}/scoped/x`,
      agents.a,
      await issuer.mint(a, { claims: { scope: 'read write' } }),
    )
    expect(ok.status).toBe(200)
  })
})

describe('forwarded client certificates', () => {
  for (const [name, header] of Object.entries(formats)) {
    it(`${name}: refused from an untrusted peer even when it carries the bound certificate`, async () => {
      const token = await issuer.mint(a)
      warnings.length = 0
      for (const route of ['direct', 'otherproxy']) {
        // on a connection presenting the bound certificate, and on one presenting none
        for (const agent of [agents.a, agents.none]) {
          const res = await call(`${rs.url}/${route}/x`, agent, token, header(a))
          expectInvalidToken(res, /untrusted peer/)
        }
      }
      expect(warnings).toHaveLength(4)
      expect(warnings[0]).toMatchObject({
        event: 'certbound.forwarded_cert_spoofing',
        peer: '127.0.0.1',
      })
      expect(JSON.stringify(warnings)).not.toContain(token)
    })

    it(`${name}: honoured from a trusted proxy with the bound certificate`, async () => {
      const res = await call(`${rs.url}/proxied/x`, agents.none, await issuer.mint(a), header(a))
      expect(res.status).toBe(200)
      expect(res.body).toEqual({ sub: a.spiffeId, thumbprint: a.thumbprint, source: 'forwarded' })
    })

    it(`${name}: rejected from a trusted proxy with a mismatching certificate`, async () => {
      const res = await call(`${rs.url}/proxied/x`, agents.none, await issuer.mint(a), header(b))
      expectInvalidToken(res, /another certificate/)
    })

    it(`${name}: a forwarded certificate is re-validated like a socket one`, async () => {
      const res = await call(
        `${rs.url}/proxied/x`,
        agents.none,
        await issuer.mint(pki.rogue),
        header(pki.rogue),
      )
      expectInvalidToken(res, /chain/)
    })
  }

  it('XFCC: only the last element (the trusted hop) counts', async () => {
    const token = await issuer.mint(a)
    // a client-supplied element carrying the bound certificate, then the proxy's with b's
    const spoofed = await call(
      `${rs.url}/proxied/x`,
      agents.none,
      token,
      xfcc(b, `${xfccElement(a)},`),
    )
    expectInvalidToken(spoofed, /another certificate/)
    const honest = await call(
      `${rs.url}/proxied/x`,
      agents.none,
      token,
      xfcc(a, `${xfccElement(b)},`),
    )
    expect(honest.status).toBe(200)
  })

  it('XFCC: an element with a Hash but no Cert is refused', async () => {
    const hash = createHash('sha256').update(a.certificate.raw).digest('hex')
    const res = await call(`${rs.url}/proxied/x`, agents.none, await issuer.mint(a), {
      'x-forwarded-client-cert': `By=spiffe://example.org/proxy;Hash=${hash};URI=${a.spiffeId}`,
    })
    expectInvalidToken(res, /Hash alone/)
  })

  it('refuses ambiguous or not configured forwarding headers from a trusted proxy', async () => {
    const token = await issuer.mint(a)
    const both = await call(`${rs.url}/proxied/x`, agents.none, token, {
      ...clientCert(a),
      ...xfcc(a),
    })
    expectInvalidToken(both, /ambiguous/)
    const xfccOnly = await call(`${rs.url}/xfcconly/x`, agents.none, token, clientCert(a))
    expectInvalidToken(xfccOnly, /not accepted/)
    expect((await call(`${rs.url}/xfcconly/x`, agents.none, token, xfcc(a))).status).toBe(200)
  })

  it('never takes a trusted proxy’s own TLS certificate for its client’s', async () => {
    // `a` connects from a trusted address with a token bound to its own certificate.
    const res = await call(`${rs.url}/proxied/x`, agents.a, await issuer.mint(a))
    expectInvalidToken(res, /no client certificate/)
    expect((await call(`${rs.url}/direct/x`, agents.a, await issuer.mint(a))).status).toBe(200)
  })
})

describe('online mode', () => {
  it('rejects a token whose certificate was revoked before its exp', async () => {
    const token = await issuer.mint(c, { expiresIn: 600 })
    expect((await call(`${rs.url}/online/x`, agents.c, token)).status).toBe(200)
    issuer.revoked.add(c.thumbprint)
    await new Promise((r) => setTimeout(r, 150))
    expectInvalidToken(await call(`${rs.url}/online/x`, agents.c, token), /no longer active/)
    // offline mode only learns at exp
    expect((await call(`${rs.url}/direct/x`, agents.c, token)).status).toBe(200)
  })
})

describe('without a TLS socket (another adapter, app.request)', () => {
  it('fails closed: no certificate, and forwarded headers from an unknown peer are spoofing', async () => {
    const app = new Hono()
    app.use('*', certboundAuth({ verifier, logger, trustedProxies: ['127.0.0.1'] }))
    app.get('*', (c) => c.text('reached'))
    const authorization = `Bearer ${await issuer.mint(a)}`
    const plain = await app.request('/x', { headers: { authorization } })
    expect(plain.status).toBe(401)
    expect(await plain.json()).toMatchObject({
      error_description: 'no client certificate was presented',
    })
    const forwarded = await app.request('/x', { headers: { authorization, ...clientCert(a) } })
    expect(forwarded.status).toBe(401)
    expect(await forwarded.json()).toMatchObject({
      error_description: expect.stringMatching(/untrusted peer/),
    })
  })
})
