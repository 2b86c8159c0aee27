import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { configFromObject, loadConfig } from '../../src/config/load.js'
import { CAError } from '../../src/errors.js'
import { loopbackTls } from '../helpers/oidc/tls.js'

const root = mkdtempSync(join(tmpdir(), 'certbound-federation-config-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const issuer = (extra: object = {}) => ({
  name: 'github',
  issuer: 'https://token.actions.githubusercontent.com',
  audience: 'https://ca.example.org',
  ...extra,
})

function refusal(raw: object): string {
  try {
    configFromObject(raw)
  } catch (e) {
    expect(e).toBeInstanceOf(CAError)
    expect((e as CAError).code).toBe('ERR_CONFIG_INVALID')
    return (e as CAError).message
  }
  throw new Error(`accepted: ${JSON.stringify(raw)}`)
}

describe('federation config', () => {
  it('defaults: no issuers, max_token_age 10m, fetch_timeout 5s', () => {
    expect(configFromObject({}).federation).toEqual({
      oidcIssuers: [],
      maxTokenAgeMs: 600_000,
      fetchTimeoutMs: 5_000,
    })
  })

  it('an issuer with jwks_uri and a ca_bundle relative to the config file, read at start', () => {
    const dir = join(root, 'a')
    mkdirSync(dir)
    const { caPem } = loopbackTls()
    writeFileSync(join(dir, 'issuer-ca.pem'), caPem)
    const file = join(dir, 'ca-config.yaml')
    writeFileSync(
      file,
      [
        'federation:',
        '  max_token_age: 15m',
        '  oidc_issuers:',
        '    - name: cluster',
        '      issuer: https://kubernetes.default.svc.cluster.local',
        '      audience: https://ca.example.org',
        '      jwks_uri: https://kubernetes.default.svc.cluster.local/openid/v1/jwks',
        '      ca_bundle: issuer-ca.pem',
        '',
      ].join('\n'),
    )
    const c = loadConfig(file)
    expect(c.federation.maxTokenAgeMs).toBe(900_000)
    expect(c.federation.oidcIssuers).toEqual([
      {
        name: 'cluster',
        issuer: 'https://kubernetes.default.svc.cluster.local',
        audience: 'https://ca.example.org',
        jwksUri: 'https://kubernetes.default.svc.cluster.local/openid/v1/jwks',
        caBundlePem: caPem,
      },
    ])
  })

  it.each([
    [
      { oidc_issuers: [issuer({ issuer: 'http://token.example' })] },
      'federation.oidc_issuers.0.issuer',
    ],
    [{ oidc_issuers: [issuer({ issuer: 'https://x.example/?a=b' })] }, 'without query or fragment'],
    [
      { oidc_issuers: [issuer({ jwks_uri: 'http://x.example/jwks' })] },
      'federation.oidc_issuers.0.jwks_uri',
    ],
    [{ oidc_issuers: [issuer({ name: 'GitHub' })] }, 'federation.oidc_issuers.0.name'],
    [{ oidc_issuers: [issuer({ audience: '' })] }, 'federation.oidc_issuers.0.audience'],
    [
      { oidc_issuers: [issuer(), issuer()] },
      'federation.oidc_issuers.1.name: "github" is configured twice',
    ],
    [{ oidc_issuers: [issuer({ extra: 1 })] }, 'unknown key "federation.oidc_issuers.0.extra"'],
    [
      { oidc_issuers: [issuer({ ca_bundle: '/nonexistent/ca.pem' })] },
      'federation.oidc_issuers.0.ca_bundle: cannot read',
    ],
    [{ max_token_age: '2d' }, 'federation.max_token_age: must be at most 24h'],
    [{ fetch_timeout: '2m' }, 'federation.fetch_timeout: must be at most 60s'],
    [{ oidc: [] }, 'unknown key "federation.oidc"'],
  ])('refuses %j naming the key', (federation, message) => {
    expect(refusal({ federation })).toContain(message)
  })

  it('a ca_bundle that holds no certificate is refused at start', () => {
    const file = join(root, 'empty.pem')
    writeFileSync(file, 'not a pem\n')
    expect(refusal({ federation: { oidc_issuers: [issuer({ ca_bundle: file })] } })).toContain(
      'holds no PEM certificate',
    )
  })
})
