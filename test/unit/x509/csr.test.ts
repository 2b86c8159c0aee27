import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { CAError } from '../../../src/errors.js'
import type { CAErrorCode } from '../../../src/errors.js'
import { parseCsr } from '../../../src/x509/csr.js'
import { derToPem, pemToDer } from '../../../src/x509/pem.js'
import { openssl, tempDir } from '../../helpers/x509.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

const SAN = 'subjectAltName=URI:spiffe://example.org/w,DNS:a.example'

const GENPKEY: Record<string, string[]> = {
  p256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  p384: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  k256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1'],
  ed25519: ['-algorithm', 'ED25519'],
  ed448: ['-algorithm', 'ED448'],
  rsa2048: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
  rsa1024: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
  rsapss: ['-algorithm', 'RSA-PSS', '-pkeyopt', 'rsa_keygen_bits:2048'],
}

function key(name: string): string {
  const path = tmp.path(`${name}.key`)
  const r = openssl(['genpkey', ...GENPKEY[name]!, '-out', path])
  if (r.code !== 0) throw new Error(r.out)
  return path
}

/** `openssl req -new` CSR PEM for a key file, with extra args (e.g. -addext). */
function csr(keyPath: string, ...extra: string[]): string {
  const r = openssl(['req', '-new', '-key', keyPath, '-subj', '/CN=x', ...extra])
  if (r.code !== 0) throw new Error(r.out)
  return r.out
}

function codeOf(fn: () => unknown): { code: CAErrorCode; message: string } {
  try {
    fn()
  } catch (e) {
    if (e instanceof CAError) return { code: e.code, message: e.message }
    throw new Error(`threw a non-CAError: ${String(e)}`)
  }
  throw new Error('did not throw')
}

const keys: Record<string, string> = {}
beforeAll(() => {
  for (const name of Object.keys(GENPKEY)) keys[name] = key(name)
})

describe('parseCsr accepts openssl CSRs', () => {
  it.each([
    ['p256', 'ec-p256'],
    ['p384', 'ec-p384'],
    ['ed25519', 'ed25519'],
    ['rsa2048', 'rsa-2048'],
  ])('%s', (name, keyType) => {
    const parsed = parseCsr(csr(keys[name]!, '-addext', SAN))
    expect(parsed.keyType).toBe(keyType)
    expect(parsed.uris).toEqual(['spiffe://example.org/w'])
    expect(parsed.dnsNames).toEqual(['a.example'])
    expect(parsed.ipAddresses).toEqual([])
    expect(parsed.requestsCA).toBe(false)
    // The SPKI is the key openssl holds.
    const expected = pemToDer(openssl(['pkey', '-in', keys[name]!, '-pubout']).out, 'PUBLIC KEY')
    expect(Buffer.from(parsed.spkiDer)).toEqual(Buffer.from(expected))
    expect(parsed.publicKey.type).toBe('public')
  })

  it('P-384 with SHA-384 and a CSR with no extensions', () => {
    const parsed = parseCsr(csr(keys.p384!, '-sha384'))
    expect(parsed.uris).toEqual([])
    expect(parsed.dnsNames).toEqual([])
  })

  it('IP and email SANs, and the legacy NEW CERTIFICATE REQUEST label', () => {
    const pem = csr(
      keys.p256!,
      '-addext',
      'subjectAltName=IP:10.0.0.1,IP:fe80::1,email:a@b.example',
    )
    const legacy = pem.replaceAll('CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST')
    const parsed = parseCsr(legacy)
    expect(parsed.ipAddresses).toEqual(['10.0.0.1', 'fe80::1'])
    expect(parsed.emails).toEqual(['a@b.example'])
  })

  it('reports basicConstraints CA:TRUE as requestsCA', () => {
    const parsed = parseCsr(
      csr(keys.p256!, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', SAN),
    )
    expect(parsed.requestsCA).toBe(true)
  })
})

describe('parseCsr refuses', () => {
  it('RSA-1024 with ERR_KEY_UNSUPPORTED naming the size', () => {
    const e = codeOf(() => parseCsr(csr(keys.rsa1024!)))
    expect(e.code).toBe('ERR_KEY_UNSUPPORTED')
    expect(e.message).toBe('RSA 1024-bit keys are refused: minimum is 2048')
  })

  it('secp256k1, Ed448 and RSA-PSS keys with ERR_KEY_UNSUPPORTED', () => {
    const k1 = codeOf(() => parseCsr(csr(keys.k256!)))
    expect(k1).toMatchObject({
      code: 'ERR_KEY_UNSUPPORTED',
      message: expect.stringContaining('curve secp256k1 is not supported'),
    })
    expect(codeOf(() => parseCsr(csr(keys.ed448!)))).toMatchObject({
      code: 'ERR_KEY_UNSUPPORTED',
      message: expect.stringContaining('ed448'),
    })
    expect(codeOf(() => parseCsr(csr(keys.rsapss!)))).toMatchObject({
      code: 'ERR_KEY_UNSUPPORTED',
      message: expect.stringContaining('rsa-pss'),
    })
  })

  it('a flipped signature byte (no proof of possession)', () => {
    for (const name of ['p256', 'ed25519', 'rsa2048']) {
      const der = pemToDer(csr(keys[name]!, '-addext', SAN), 'CERTIFICATE REQUEST')
      der[der.length - 1]! ^= 0x01
      const e = codeOf(() => parseCsr(derToPem(der, 'CERTIFICATE REQUEST')))
      expect(e.code).toBe('ERR_CSR_INVALID')
      expect(e.message).toMatch(/signature does not verify/)
    }
  })

  it('a SAN changed after signing', () => {
    const der = pemToDer(csr(keys.p256!, '-addext', SAN), 'CERTIFICATE REQUEST')
    const at = Buffer.from(der).indexOf('example.org/w')
    der[at + 'example.org/'.length] = 'x'.charCodeAt(0)
    expect(codeOf(() => parseCsr(derToPem(der, 'CERTIFICATE REQUEST'))).code).toBe(
      'ERR_CSR_INVALID',
    )
  })

  it('SHA-1 signatures as an unsupported signature algorithm', () => {
    const e = codeOf(() => parseCsr(csr(keys.p256!, '-sha1')))
    expect(e).toEqual({
      code: 'ERR_CSR_INVALID',
      message: 'CSR ECDSA with SHA-1 signatures are not supported',
    })
  })

  it('garbage, truncation and trailing bytes with ERR_CSR_INVALID', () => {
    const der = pemToDer(csr(keys.p256!), 'CERTIFICATE REQUEST')
    const cases = [
      new Uint8Array([1, 2, 3, 4]),
      der.subarray(0, der.length - 5),
      Uint8Array.from([...der, 0, 0]),
      new Uint8Array([0x30, 0x00]),
    ]
    for (const bad of cases) {
      expect(codeOf(() => parseCsr(derToPem(bad, 'CERTIFICATE REQUEST'))).code).toBe(
        'ERR_CSR_INVALID',
      )
    }
    // Deterministic fuzz: single-byte corruptions anywhere must only ever yield CAErrors.
    for (let i = 0; i < der.length; i += 3) {
      const mutated = der.slice()
      mutated[i]! ^= 0x5a
      const e = codeOf(() => parseCsr(derToPem(mutated, 'CERTIFICATE REQUEST')))
      expect(['ERR_CSR_INVALID', 'ERR_KEY_UNSUPPORTED']).toContain(e.code)
    }
  })

  it('non-PEM input and a wrong label with ERR_PEM_INVALID', () => {
    const pem = csr(keys.p256!)
    expect(codeOf(() => parseCsr('hello')).code).toBe('ERR_PEM_INVALID')
    expect(codeOf(() => parseCsr(pem.replaceAll('CERTIFICATE REQUEST', 'CERTIFICATE'))).code).toBe(
      'ERR_PEM_INVALID',
    )
    expect(codeOf(() => parseCsr(pem.replace(/\n[A-Za-z0-9+/]{4}/, '\n!!!!'))).code).toBe(
      'ERR_PEM_INVALID',
    )
    expect(codeOf(() => parseCsr(undefined as unknown as string)).code).toBe('ERR_PEM_INVALID')
  })
})
