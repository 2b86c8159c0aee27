// The fast CSR reader (csr-fast.ts) against the pkijs reader (csr.ts parseCsrDerWithPkijs):
// the same reading of valid CSRs from openssl and from csr-builder.ts, the same refusals of
// mutated ones — except that the fast reader also refuses encodings that are not minimal DER
// (BER lengths, non-minimal INTEGERs, ...), which the pkijs reader, a BER reader, accepts.
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { privateKeyToPem } from '../../../src/crypto/keys.js'
import type { KeyType } from '../../../src/crypto/keys.js'
import { buildCsr } from '../../../src/x509/csr-builder.js'
import { readCsrFast } from '../../../src/x509/csr-fast.js'
import { parseCsrDer, parseCsrDerWithPkijs } from '../../../src/x509/csr.js'
import { pemToDer } from '../../../src/x509/pem.js'
import { isRefusal, STRICTER, verdict, view } from './csr-verdict.js'
import { FIXTURE_KEYS } from './fixture-keys.js'
import { openssl, tempDir } from '../../helpers/x509.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// --- valid CSRs -------------------------------------------------------------------------------

const keyFiles: Record<string, string> = {}
beforeAll(() => {
  for (const type of Object.keys(FIXTURE_KEYS) as KeyType[]) {
    keyFiles[type] = tmp.write(`${type}.key`, privateKeyToPem(FIXTURE_KEYS[type][0]!.privateKey))
  }
  for (const [name, args] of [
    ['secp256k1', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1']],
    ['ed448', ['-algorithm', 'ED448']],
    ['rsa-1024', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024']],
  ] as const) {
    keyFiles[name] = tmp.path(`${name}.key`)
    expect(openssl(['genpkey', ...args, '-out', keyFiles[name]!]).code).toBe(0)
  }
  tmp.write(
    'attrs.cnf',
    '[req]\ndistinguished_name=dn\nattributes=attrs\nprompt=no\n[dn]\nCN=x\n' +
      '[attrs]\nchallengePassword=sesame1234\nunstructuredName=box\n',
  )
})

function opensslCsr(key: string, ...extra: string[]): Uint8Array {
  const r = openssl(['req', '-new', '-key', keyFiles[key]!, '-subj', '/CN=x', ...extra])
  if (r.code !== 0) throw new Error(r.out)
  return pemToDer(r.out, 'CERTIFICATE REQUEST')
}

const SAN = 'subjectAltName=URI:spiffe://example.org/w,DNS:a.example,DNS:B.example'
const VARIANTS: readonly (readonly string[])[] = [
  [],
  ['-addext', SAN],
  ['-addext', 'subjectAltName=IP:10.0.0.1,IP:fe80::1,email:a@b.example,URI:spiffe://e.org/x'],
  ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', SAN],
  ['-addext', 'basicConstraints=CA:FALSE', '-addext', 'keyUsage=digitalSignature'],
  ['-subj', '/O=example.org/OU=a/CN=b+serialNumber=7', '-multivalue-rdn', '-addext', SAN],
  ['-config', 'ATTRS', '-addext', SAN],
]

describe('fast CSR reader: valid CSRs read as pkijs reads them', () => {
  it.each(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096'])(
    'openssl %s',
    (key) => {
      for (const variant of VARIANTS) {
        const args = variant.map((a) => (a === 'ATTRS' ? tmp.path('attrs.cnf') : a))
        const digests =
          key.startsWith('ec-') || key.startsWith('rsa-') ? ['-sha384', '-sha512'] : []
        for (const digest of ['', ...digests]) {
          const der = opensslCsr(key, ...args, ...(digest ? [digest] : []))
          const fast = readCsrFast(der)
          expect(fast, `${key} ${args.join(' ')} ${digest}`).toBeDefined()
          expect(view(fast!)).toEqual(view(parseCsrDerWithPkijs(der)))
        }
      }
    },
  )

  it('unsupported keys: the same ERR_KEY_UNSUPPORTED as pkijs', () => {
    for (const key of ['secp256k1', 'ed448', 'rsa-1024']) {
      const der = opensslCsr(key, '-addext', SAN)
      const fast = verdict(() => readCsrFast(der))
      expect(fast).toMatchObject({ code: 'ERR_KEY_UNSUPPORTED' })
      expect(fast).toEqual(verdict(() => parseCsrDerWithPkijs(der)))
    }
  })

  it('csr-builder CSRs, any key type and names', () => {
    const pool = Object.values(FIXTURE_KEYS).flat()
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/)
    fc.assert(
      fc.property(
        fc.constantFrom(...pool),
        fc.array(
          label.map((l) => `spiffe://example.org/${l}`),
          { maxLength: 2 },
        ),
        fc.array(
          label.map((l) => `${l}.example`),
          { maxLength: 3 },
        ),
        fc.option(fc.string({ minLength: 1, maxLength: 12 }), { nil: undefined }),
        (key, uris, dnsNames, commonName) => {
          const pem = buildCsr({ ...key, uris, dnsNames, ...(commonName ? { commonName } : {}) })
          const der = pemToDer(pem, 'CERTIFICATE REQUEST')
          const fast = readCsrFast(der)
          expect(fast).toBeDefined()
          expect(view(fast!)).toEqual(view(parseCsrDerWithPkijs(der)))
          expect(fast!.uris).toEqual(uris)
        },
      ),
      { numRuns: 60 },
    )
  })
})

// --- mutated CSRs -----------------------------------------------------------------------------

const mutation = fc.oneof(
  fc.record({
    kind: fc.constant('xor' as const),
    at: fc.nat(),
    value: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
)

interface Mutation {
  readonly kind: 'xor' | 'cut' | 'insert' | 'delete'
  readonly at: number
  readonly value?: number
}

function mutate(der: Uint8Array, m: Mutation): Uint8Array {
  const at = m.at % der.length
  const b = Array.from(der)
  if (m.kind === 'xor') b[at]! ^= m.value!
  else if (m.kind === 'cut') b.length = at
  else if (m.kind === 'insert') b.splice(at, 0, m.value!)
  else b.splice(at, 1)
  return Uint8Array.from(b)
}

describe('fast CSR reader: mutated CSRs', () => {
  let bases: Uint8Array[] = []
  beforeAll(() => {
    bases = [
      opensslCsr('ec-p256', '-addext', SAN),
      opensslCsr('rsa-2048', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', SAN),
      opensslCsr('ed25519', '-addext', SAN),
      opensslCsr('ec-p384'),
    ]
  })

  it('refused whenever pkijs refuses; a different verdict only for non-minimal DER', () => {
    const seen = { accepted: 0, fallback: 0, sameCode: 0, stricter: 0 }
    fc.assert(
      fc.property(fc.nat(), mutation, (which, m) => {
        const der = mutate(bases[which % bases.length]!, m)
        const pk = verdict(() => parseCsrDerWithPkijs(der))
        const fast = verdict(() => readCsrFast(der))
        const combined = verdict(() => parseCsrDer(der))
        if (fast === 'fallback') {
          seen.fallback++
          expect(combined).toEqual(pk)
        } else if ('ok' in fast) {
          seen.accepted++
          expect(fast).toEqual(pk)
        } else if (isRefusal(pk) && pk.code === fast.code) {
          seen.sameCode++
        } else {
          // Only the DER strictness may turn a pkijs acceptance (or another code) into a refusal.
          expect(fast.message).toMatch(STRICTER)
          seen.stricter++
        }
        if (isRefusal(pk)) expect(isRefusal(combined)).toBe(true)
      }),
      { numRuns: 600 },
    )
    // Nearly every mutation is refused by both with the same code (the signature, mostly);
    // the encodings only the strict reader refuses are built by hand below.
    if (process.env.CERTBOUND_SHOW_STATS) console.log(seen)
    expect(seen.sameCode).toBeGreaterThan(300)
  })
})
