// The fast CSR reader (csr-fast.ts) against the pkijs reader (csr.ts parseCsrDerWithPkijs):
// the same reading of valid CSRs from openssl and from csr-builder.ts, the same refusals of
// mutated ones — except that the fast reader also refuses encodings that are not minimal DER
// (BER lengths, non-minimal INTEGERs, ...), which the pkijs reader, a BER reader, accepts.
import { createPublicKey, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'

import * as asn1js from 'asn1js'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { hashFor, privateKeyToPem, requireKeyType } from '../../../src/crypto/keys.js'
import type { KeyType } from '../../../src/crypto/keys.js'
import { CAError } from '../../../src/errors.js'
import { buildCsr } from '../../../src/x509/csr-builder.js'
import { readCsrFast } from '../../../src/x509/csr-fast.js'
import { parseCsrDer, parseCsrDerWithPkijs } from '../../../src/x509/csr.js'
import type { ParsedCsr } from '../../../src/x509/csr.js'
import { pemToDer } from '../../../src/x509/pem.js'
import { FIXTURE_KEYS } from './fixture-keys.js'
import { openssl, tempDir } from './openssl-helper.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

const view = (c: ParsedCsr) => ({
  der: Buffer.from(c.der).toString('hex'),
  spki: Buffer.from(c.spkiDer).toString('hex'),
  key: c.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'),
  keyType: c.keyType,
  uris: c.uris,
  dnsNames: c.dnsNames,
  ipAddresses: c.ipAddresses,
  emails: c.emails,
  requestsCA: c.requestsCA,
})

type Verdict = { ok: ReturnType<typeof view> } | { code: string; message: string } | 'fallback'

function verdict(read: () => ParsedCsr | undefined): Verdict {
  try {
    const r = read()
    return r === undefined ? 'fallback' : { ok: view(r) }
  } catch (e) {
    if (!(e instanceof CAError)) throw new Error(`non-CAError: ${String(e)}`)
    return { code: e.code, message: e.message }
  }
}

const STRICTER = /^CSR is not minimal DER: /

const isRefusal = (v: Verdict): v is { code: string; message: string } =>
  typeof v === 'object' && 'code' in v

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

// --- hand-built CSRs: the stricter cases and the fallback shapes -------------------------------

const key = FIXTURE_KEYS['ec-p256'][0]!
const spki = key.publicKey.export({ type: 'spki', format: 'der' })
const ECDSA_SHA256 = Buffer.from('300a06082a8648ce3d040302', 'hex')

function header(tag: number, len: number, longForm = false): Buffer {
  if (len < 0x80 && !longForm) return Buffer.from([tag, len])
  if (len < 0x100) return Buffer.from([tag, 0x81, len])
  return Buffer.from([tag, 0x82, len >> 8, len & 0xff])
}
const tlv = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts)
  return Buffer.concat([header(tag, body.length), body])
}
const oid = (dotted: string): Buffer =>
  Buffer.from(new asn1js.ObjectIdentifier({ value: dotted }).toBER())

/** A SAN extensionRequest attribute with `ext` as the Extension encoding. */
function extensionRequest(...exts: Buffer[]): Buffer {
  return tlv(0x30, oid('1.2.840.113549.1.9.14'), tlv(0x31, tlv(0x30, ...exts)))
}
const sanExt = (critical?: boolean): Buffer =>
  tlv(
    0x30,
    oid('2.5.29.17'),
    ...(critical === undefined ? [] : [Buffer.from([0x01, 0x01, critical ? 0xff : 0x00])]),
    tlv(0x04, tlv(0x30, tlv(0x86, Buffer.from('spiffe://example.org/w')))),
  )

function signed(cri: Buffer, signer: KeyObject = key.privateKey): Uint8Array {
  const sig = sign(hashFor(requireKeyType(signer)), cri, signer)
  return Uint8Array.from(tlv(0x30, cri, ECDSA_SHA256, tlv(0x03, Buffer.from([0]), sig)))
}
const cri = (attrs: Buffer | undefined, version = Buffer.from([0x02, 0x01, 0x00])): Buffer =>
  tlv(0x30, version, tlv(0x30), spki, ...(attrs ? [attrs] : []))

describe('fast CSR reader: hand-built encodings', () => {
  it('the baseline hand-built CSR reads the same both ways', () => {
    const der = signed(cri(tlv(0xa0, extensionRequest(sanExt()))))
    expect(view(readCsrFast(der)!)).toEqual(view(parseCsrDerWithPkijs(der)))
  })

  it('refuses what pkijs accepts but is not minimal DER (stricter)', () => {
    const good = signed(cri(tlv(0xa0, extensionRequest(sanExt()))))
    const body = good.subarray(good[1]! & 0x80 ? 2 + (good[1]! & 0x7f) : 2)
    const longOuter = Uint8Array.from([0x30, 0x82, body.length >> 8, body.length & 0xff, ...body])
    const bigOuter = Uint8Array.from([0x30, 0x83, 0, body.length >> 8, body.length & 0xff, ...body])
    const indefinite = Uint8Array.from([0x30, 0x80, ...body, 0, 0])
    // Inside the signed part: a long-form length below 128, and a version INTEGER 02 02 00 00.
    const ext = sanExt()
    const er = extensionRequest(ext)
    const longAttr = signed(
      tlv(0x30, Buffer.from([2, 1, 0]), tlv(0x30), spki, header(0xa0, er.length, true), er),
    )
    const longVersion = signed(cri(tlv(0xa0, extensionRequest(ext)), Buffer.from([2, 2, 0, 0])))
    for (const [name, der] of Object.entries({
      longOuter,
      bigOuter,
      indefinite,
      longAttr,
      longVersion,
    })) {
      const pk = verdict(() => parseCsrDerWithPkijs(der))
      const fast = verdict(() => parseCsrDer(der))
      expect(fast, name).toMatchObject({
        code: 'ERR_CSR_INVALID',
        message: expect.stringMatching(STRICTER),
      })
      // pkijs reads BER: these it accepts (the record of exactly where the fast reader is stricter).
      expect(pk, name).toHaveProperty('ok')
    }
  })

  it('hands valid DER of shapes it does not model to pkijs', () => {
    const cases = {
      // DER never encodes a DEFAULT value: an explicit critical FALSE.
      explicitFalse: signed(cri(tlv(0xa0, extensionRequest(sanExt(false))))),
      // RFC 2986 requires [0] attributes; pkijs does not.
      noAttributes: signed(cri(undefined)),
      otherNameSan: opensslCsr(
        'ec-p256',
        '-addext',
        'subjectAltName=URI:spiffe://e.org/w,otherName:1.2.3.4;UTF8:hi',
      ),
    }
    for (const [name, der] of Object.entries(cases)) {
      expect(readCsrFast(der), name).toBeUndefined()
      expect(
        verdict(() => parseCsrDer(der)),
        name,
      ).toEqual(verdict(() => parseCsrDerWithPkijs(der)))
      expect(
        verdict(() => parseCsrDer(der)),
        name,
      ).toHaveProperty('ok')
    }
    expect(parseCsrDer(cases.otherNameSan).uris).toEqual(['spiffe://e.org/w'])
  })

  it('an EC point with a coordinate ≥ p (a second encoding of a key) is refused both ways', () => {
    // A P-256 point with small x, and the same x plus the field prime.
    const p = (1n << 256n) - (1n << 224n) + (1n << 192n) + (1n << 96n) - 1n
    const b = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn
    const pow = (a: bigint, e: bigint): bigint => {
      let r = 1n
      for (a %= p; e; e >>= 1n, a = (a * a) % p) if (e & 1n) r = (r * a) % p
      return r
    }
    const hex = (v: bigint): Buffer => Buffer.from(v.toString(16).padStart(64, '0'), 'hex')
    let x = 1n
    let y = 0n
    for (; ; x++) {
      const rhs = (((x ** 3n - 3n * x + b) % p) + p) % p
      y = pow(rhs, (p + 1n) / 4n)
      if ((y * y) % p === rhs) break
    }
    const good = Buffer.from(spki)
    hex(x).copy(good, 27)
    hex(y).copy(good, 59)
    expect(() => createPublicKey({ key: good, format: 'der', type: 'spki' })).not.toThrow()
    const twin = Buffer.from(good)
    hex(x + p).copy(twin, 27)
    const der = Uint8Array.from(
      tlv(
        0x30,
        tlv(0x30, Buffer.from([2, 1, 0]), tlv(0x30), twin, tlv(0xa0)),
        ECDSA_SHA256,
        tlv(0x03, Buffer.from([0, 0x30, 0])),
      ),
    )
    const expected = { code: 'ERR_CSR_INVALID', message: 'CSR public key is malformed' }
    expect(verdict(() => readCsrFast(der))).toEqual(expected)
    expect(verdict(() => parseCsrDerWithPkijs(der))).toEqual(expected)
  })

  it('another key signing: no proof of possession, both ways', () => {
    const der = signed(
      cri(tlv(0xa0, extensionRequest(sanExt()))),
      FIXTURE_KEYS['ec-p256'][1]!.privateKey,
    )
    const fast = verdict(() => readCsrFast(der))
    expect(fast).toMatchObject({
      code: 'ERR_CSR_INVALID',
      message: expect.stringMatching(/does not verify/),
    })
    expect(fast).toEqual(verdict(() => parseCsrDerWithPkijs(der)))
  })
})
