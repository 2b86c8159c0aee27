import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { VerifyError, parseClientCert, parseEscapedPem, parseXfcc } from '@certbound/verifier'
import { createProxyMatcher, normalizeAddress } from '@certbound/verifier/mtls'
import { createTestPki } from './helpers/pki.js'
import type { Issued, TestPki } from './helpers/pki.js'

let pki: TestPki
let a: Issued
let b: Issued

beforeAll(() => {
  pki = createTestPki()
  a = pki.leaf('a')
  b = pki.leaf('b')
})
afterAll(() => pki?.cleanup())

function refusedWith(fn: () => unknown, message: RegExp) {
  let err: unknown
  try {
    fn()
  } catch (e) {
    err = e
  }
  expect(err).toBeInstanceOf(VerifyError)
  expect((err as VerifyError).code).toBe('ERR_CLIENT_CERT_REQUIRED')
  expect((err as VerifyError).message).toMatch(message)
}

const b64 = (holder: Issued) => holder.certificate.raw.toString('base64')
const hash = (holder: Issued) => createHash('sha256').update(holder.certificate.raw).digest('hex')

describe('RFC 9440 Client-Cert', () => {
  it('parses a byte sequence and an optional chain', () => {
    const intermediate = `:${pki.intermediate.certificate.raw.toString('base64')}:`
    const parsed = parseClientCert(` :${b64(a)}: `, `${intermediate}, :${b64(b)}:`)
    expect(parsed.certificate.raw.equals(a.certificate.raw)).toBe(true)
    expect(parsed.chain.map((c) => c.subject)).toEqual([pki.intermediate.certificate.subject])
  })

  it('refuses anything but one byte sequence holding one certificate', () => {
    refusedWith(() => parseClientCert(b64(a)), /byte sequence/)
    refusedWith(() => parseClientCert(`:${b64(a)}:, :${b64(b)}:`), /byte sequence/)
    refusedWith(() => parseClientCert(':AAAA:'), /exactly one certificate/)
  })
})

describe('Envoy X-Forwarded-Client-Cert', () => {
  const element = (holder: Issued, extra = '') =>
    `By=spiffe://example.org/proxy;Hash=${hash(holder)};Cert="${encodeURIComponent(holder.certPem)}"${extra}`

  it('takes the last element, with quoted commas, semicolons and escaped quotes before it', () => {
    const first = `${element(b)};Subject="CN=a,O=\\"b;c\\",C=d";URI=spiffe://example.org/x`
    const parsed = parseXfcc(`${first},${element(a, ';DNS=a.example;DNS=b.example')}`)
    expect(parsed.certificate.raw.equals(a.certificate.raw)).toBe(true)
  })

  it('passes CA certificates of Chain= along as untrusted intermediates', () => {
    const chain = encodeURIComponent(a.chainPem)
    const parsed = parseXfcc(`${element(a)};Chain="${chain}"`)
    expect(parsed.chain.map((c) => c.subject)).toEqual([pki.intermediate.certificate.subject])
  })

  it('refuses an element with a Hash and no Cert, even if an earlier element has one', () => {
    refusedWith(() => parseXfcc(`${element(a)},By=x;Hash=${hash(a)}`), /Hash alone/)
  })

  it('refuses a Hash that does not match the Cert', () => {
    const bad = `Hash=${hash(b)};Cert="${encodeURIComponent(a.certPem)}"`
    refusedWith(() => parseXfcc(bad), /Hash does not match/)
  })

  it('refuses malformed values', () => {
    refusedWith(() => parseXfcc(`Cert="${encodeURIComponent(a.certPem)}`), /unterminated/)
    refusedWith(() => parseXfcc(`Cert="${encodeURIComponent(a.chainPem)}"`), /exactly one/)
    refusedWith(() => parseXfcc('Cert=%E0%A4%A'), /URL-encoded/)
    refusedWith(() => parseXfcc(`${element(a)};Cert=x`), /repeats cert/)
    refusedWith(() => parseXfcc('garbage'), /malformed pair/)
  })
})

describe('URL-encoded PEM (nginx $ssl_client_escaped_cert)', () => {
  it('parses one certificate', () => {
    const parsed = parseEscapedPem(encodeURIComponent(a.certPem))
    expect(parsed.certificate.raw.equals(a.certificate.raw)).toBe(true)
  })

  it('refuses bundles and bad encodings', () => {
    refusedWith(() => parseEscapedPem(encodeURIComponent(a.chainPem)), /exactly one/)
    refusedWith(() => parseEscapedPem('%-----BEGIN'), /URL-encoded/)
  })
})

describe('trusted proxies', () => {
  it('matches IPv4 and IPv6 addresses and CIDRs, with IPv4-mapped peers', () => {
    const trusted = createProxyMatcher(['10.0.0.0/8', '192.0.2.7', 'fd00::/8', '::1'])
    expect(trusted('10.200.3.4')).toBe(true)
    expect(trusted('::ffff:10.200.3.4')).toBe(true)
    expect(trusted('192.0.2.7')).toBe(true)
    expect(trusted('192.0.2.8')).toBe(false)
    expect(trusted('11.0.0.1')).toBe(false)
    expect(trusted('fd12::1')).toBe(true)
    expect(trusted('fe80::1')).toBe(false)
    expect(trusted('::1')).toBe(true)
    expect(trusted(undefined)).toBe(false)
    expect(trusted('not-an-ip')).toBe(false)
  })

  it('trusts nobody by default', () => {
    const trusted = createProxyMatcher([])
    expect(trusted('127.0.0.1')).toBe(false)
    expect(trusted('::1')).toBe(false)
  })

  it('refuses entries that are not IPs or CIDRs', () => {
    // An empty or non-decimal prefix must not read as /0 (which would trust every address).
    const bad = ['localhost', '10.0.0.0/33', '::/129', '1.2.3.4/8/9', '', '10.0.0.0/x']
    bad.push('10.0.0.1/', '::1/', '10.0.0.1/-0', '10.0.0.1/0x8', '10.0.0.1/1e1', '10.0.0.1/ 8')
    for (const entry of bad) {
      expect(() => createProxyMatcher([entry])).toThrow(TypeError)
    }
  })

  it('normalises IPv4-mapped addresses', () => {
    expect(normalizeAddress('::ffff:127.0.0.1')).toBe('127.0.0.1')
    expect(normalizeAddress('::1')).toBe('::1')
    expect(normalizeAddress(undefined)).toBeUndefined()
  })
})
