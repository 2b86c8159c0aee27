import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { configFromObject, loadConfig } from '../../src/config/load.js'
import { CAError } from '../../src/errors.js'

const root = mkdtempSync(join(tmpdir(), 'certbound-config-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

let n = 0
/** Writes `yaml` to a fresh config file (in its own directory) and returns its path. */
function configFile(yaml: string): string {
  const dir = join(root, `c${++n}`)
  mkdirSync(dir)
  const file = join(dir, 'ca-config.yaml')
  writeFileSync(file, yaml)
  return file
}

/** The config error for `yaml`, which must be ERR_CONFIG_INVALID. */
function refusal(yaml: string): string {
  let error: unknown
  try {
    loadConfig(configFile(yaml))
  } catch (e) {
    error = e
  }
  expect(error, `accepted:\n${yaml}`).toBeInstanceOf(CAError)
  expect((error as CAError).code).toBe('ERR_CONFIG_INVALID')
  return (error as CAError).message
}

describe('configuration', () => {
  it('defaults from {}: every key has one', () => {
    const c = configFromObject({})
    expect(c.trustDomain).toBe('example.org')
    expect(c.dataDir).toBe(resolve('data'))
    expect(c.server).toMatchObject({
      host: '127.0.0.1',
      port: 8443,
      hostnames: ['localhost', '127.0.0.1'],
      trustedProxies: [],
      maxBodyBytes: 65536,
    })
    expect(c.database.synchronous).toBe('FULL')
    expect(c.ca.keyType).toBe('ec-p256')
    expect(c.certificates).toMatchObject({
      defaultTtlMs: 3_600_000,
      maxTtlMs: 86_400_000,
      backdateMs: 60_000,
      allowedKeyTypes: ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096'],
      organization: 'example.org',
    })
    expect(c.enrollment.joinTokenTtlMs).toBe(3_600_000)
    expect(c.admin.spiffeIds).toEqual(['spiffe://example.org/admin'])
    expect(c.tokens.issuer).toBe('https://localhost:8443')
    expect(c.tokens.audience).toEqual(['https://localhost:8443'])
    expect(c.tokens.accessTokenTtlMs).toBe(300_000)
    expect(c.tokens.refreshTokenTtlMs).toBe(86_400_000)
  })

  it('an empty file and a file with only trust_domain work; derived defaults follow the trust domain', () => {
    expect(loadConfig(configFile('')).trustDomain).toBe('example.org')
    const c = loadConfig(configFile('trust_domain: corp.example\n'))
    expect(c.trustDomain).toBe('corp.example')
    expect(c.admin.spiffeIds).toEqual(['spiffe://corp.example/admin'])
    expect(c.certificates.organization).toBe('corp.example')
    expect(c.certificates.maxTtlMs).toBe(86_400_000)
  })

  it('the repository ca-config.yaml loads and serves on 127.0.0.1:8443', () => {
    const c = loadConfig('ca-config.yaml')
    expect(c.server.host).toBe('127.0.0.1')
    expect(c.server.port).toBe(8443)
    expect(c.dataDir).toBe(resolve('data'))
  })

  it('relative data_dir is resolved against the config file directory, not the cwd', () => {
    const file = configFile('data_dir: ./state/ca\n')
    expect(loadConfig(file).dataDir).toBe(join(file, '..', 'state', 'ca'))
    expect(loadConfig(configFile('data_dir: /var/lib/certbound\n')).dataDir).toBe(
      '/var/lib/certbound',
    )
  })

  it('durations: 30s, 15m, 1h, 7d', () => {
    const c = loadConfig(
      configFile(
        'certificates:\n  default_ttl: 30s\n  max_ttl: 7d\nenrollment:\n  join_token_ttl: 15m\n',
      ),
    )
    expect(c.certificates.defaultTtlMs).toBe(30_000)
    expect(c.certificates.maxTtlMs).toBe(7 * 86_400_000)
    expect(c.enrollment.joinTokenTtlMs).toBe(15 * 60_000)
  })

  it('unknown keys are refused, naming the key (top level and nested)', () => {
    expect(refusal('trust_domian: example.org\n')).toContain('trust_domian')
    expect(refusal('server:\n  lisen: 127.0.0.1:8443\n')).toContain('server.lisen')
    expect(refusal('certificates:\n  max_tll: 1h\n')).toContain('certificates.max_tll')
    expect(refusal('tokens:\n  isuer: https://x.example\n')).toContain('tokens.isuer')
  })

  it('bad values are refused, naming the key', () => {
    const cases: [string, string][] = [
      ['certificates:\n  max_ttl: 10x\n', 'certificates.max_ttl'],
      ['certificates:\n  max_ttl: 10\n', 'certificates.max_ttl'],
      ['certificates:\n  default_ttl: "-1h"\n', 'certificates.default_ttl'],
      ['certificates:\n  backdate: 10m\n', 'certificates.backdate'],
      ['certificates:\n  default_ttl: 2d\n', 'certificates.default_ttl'], // over max_ttl (24h)
      ['certificates:\n  allowed_key_types: [rsa-1024]\n', 'certificates.allowed_key_types'],
      ['certificates:\n  allowed_key_types: []\n', 'certificates.allowed_key_types'],
      ['ca:\n  key_type: dsa\n', 'ca.key_type'],
      ['server:\n  listen: localhost\n', 'server.listen'],
      ['server:\n  listen: 127.0.0.1:99999\n', 'server.listen'],
      ['server:\n  trusted_proxies: [not-an-ip]\n', 'server.trusted_proxies'],
      ['server:\n  trusted_proxies: ["10.0.0.1/"]\n', 'server.trusted_proxies'], // not /0
      ['server:\n  trusted_proxies: ["::ffff:10.0.0.0/104"]\n', 'server.trusted_proxies'],
      ['server:\n  forwarded_client_cert: x-client-cert\n', 'server.forwarded_client_cert'],
      ['server:\n  hostnames: ["exa mple"]\n', 'server.hostnames'],
      ['server:\n  hostnames: [localhost, "https://ca.example.org"]\n', 'server.hostnames'],
      ['server:\n  hostnames: []\n', 'server.hostnames'],
      ['trust_domain: Example.ORG\n', 'trust_domain'],
      ['trust_domain: "spiffe://example.org"\n', 'trust_domain'],
      ['admin:\n  spiffe_ids: ["spiffe://other.org/admin"]\n', 'admin.spiffe_ids'],
      ['admin:\n  spiffe_ids: ["spiffe://example.org/a/../admin"]\n', 'admin.spiffe_ids'],
      ['tokens:\n  issuer: http://localhost:8443\n', 'tokens.issuer'],
      ['enrollment:\n  join_token_ttl: soon\n', 'enrollment.join_token_ttl'],
      ['database:\n  synchronous: OFF\n', 'database.synchronous'],
      ['log_level: loud\n', 'log_level'],
    ]
    for (const [yaml, key] of cases) {
      const message = refusal(yaml)
      expect(message, yaml).toContain(key)
      expect(message, yaml).toContain('ca-config.yaml')
    }
  })

  it('backdate: 5m is the most accepted', () => {
    expect(loadConfig(configFile('certificates:\n  backdate: 5m\n')).certificates.backdateMs).toBe(
      300_000,
    )
    expect(refusal('certificates:\n  backdate: 301s\n')).toContain('certificates.backdate')
  })

  it('not YAML, not a mapping, or a missing file: a clear refusal naming the file', () => {
    expect(refusal('trust_domain: [unclosed\n')).toMatch(/YAML/)
    expect(refusal('- a\n- b\n')).toMatch(/ca-config\.yaml/)
    expect(() => loadConfig(join(root, 'missing.yaml'))).toThrow(/missing\.yaml/)
  })

  it('tokens.issuer default names the first hostname and the listen port; audience defaults to the issuer', () => {
    const c = loadConfig(
      configFile('server:\n  listen: 0.0.0.0:9443\n  hostnames: [ca.example.org]\n'),
    )
    expect(c.tokens.issuer).toBe('https://ca.example.org:9443')
    expect(c.tokens.audience).toEqual(['https://ca.example.org:9443'])
    // An IPv6 first hostname is bracketed in the URL; DNS names are lower-cased.
    const v6 = loadConfig(configFile('server:\n  hostnames: ["::1", CA.Example.org]\n'))
    expect(v6.tokens.issuer).toBe('https://[::1]:8443')
    expect(new URL(v6.tokens.issuer).hostname).toBe('[::1]')
    expect(v6.server.hostnames).toEqual(['::1', 'ca.example.org'])
    const d = loadConfig(configFile('tokens:\n  issuer: https://auth.example.org/\n'))
    expect(d.tokens.issuer).toBe('https://auth.example.org')
  })
})
