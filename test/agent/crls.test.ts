import { X509Certificate } from 'node:crypto'

import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { caPath, crlUrls, distributionPoints, keyIdHex } from '../../src/agent/crl-sources.js'
import { CrlKeeper } from '../../src/agent/crls.js'
import type { Credential } from '../../src/agent/credential.js'
import { generateKeyPair } from '../../src/crypto/keys.js'
import { buildCertificate } from '../../src/x509/certificate.js'
import { buildCrl } from '../../src/x509/crl.js'
import { derToPem } from '../../src/x509/pem.js'
import { withUrls, PROFILES } from '../../src/x509/profiles.js'
import { newSerial } from '../../src/x509/serial.js'
import { makeChain, openssl, tempDir, type TestChain } from '../helpers/x509.js'

// The agent's CRL keeper on real CRLs (signed by a real chain, checked with node:crypto and
// openssl); only the transport is replaced by a table of URL → bytes, so that every failure
// a server could produce (tampered, foreign, replayed, stale, missing) can be served.

const tmp = tempDir()
afterAll(() => tmp.cleanup())

const SERVER = 'https://ca.example.org:8443'
const HOUR = 3600_000
let chain: TestChain
let other: TestChain
let cred: Credential
let anchors: X509Certificate[]
let leaf: X509Certificate
let inter: X509Certificate
let root: X509Certificate

function crl(
  issuer: TestChain['root'],
  n: bigint,
  opts: { at?: number; validityMs?: number; serials?: string[] } = {},
) {
  const at = Math.floor((opts.at ?? Date.now()) / 1000) * 1000
  return buildCrl({
    issuer,
    crlNumber: n,
    thisUpdate: new Date(at),
    nextUpdate: new Date(at + (opts.validityMs ?? HOUR)),
    revoked: (opts.serials ?? []).map((s) => ({
      serialHex: s,
      revokedAt: new Date(at),
      reason: 'superseded' as const,
    })),
  })
}

/** A keeper over a table of URL → DER (undefined: 404, an Error: the fetch fails). */
function keeper(table: Map<string, Uint8Array | Error | undefined>) {
  const numbers = new Map<string, bigint>()
  const warnings: string[] = []
  const log = pino(
    { level: 'debug' },
    {
      write: (l: string) => {
        const line = JSON.parse(l)
        if (line.level >= 40) warnings.push(line.msg)
      },
    },
  )
  const fetched: string[] = []
  const k = new CrlKeeper({
    server: SERVER,
    numbers,
    log,
    fetch: async (url) => {
      fetched.push(url)
      const v = table.get(url)
      if (v instanceof Error) throw v
      return v
    },
  })
  return { k, numbers, warnings, fetched }
}

beforeAll(async () => {
  chain = await makeChain('ec-p256')
  other = await makeChain('ec-p256')
  const keys = await generateKeyPair('ec-p256')
  const now = Date.now()
  const leafDer = buildCertificate({
    profile: withUrls(PROFILES.leaf, { crl: [`${SERVER}/cdp/inter.crl`] }),
    subject: { organization: 'example.org' },
    publicKey: keys.publicKey,
    serial: newSerial(),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + HOUR),
    uris: ['spiffe://example.org/w'],
    issuer: chain.intermediate,
  })
  leaf = new X509Certificate(leafDer)
  inter = new X509Certificate(chain.intermediate.certDer)
  root = new X509Certificate(chain.root.certDer)
  anchors = [root]
  const certPem = derToPem(leafDer, 'CERTIFICATE')
  cred = {
    certPem,
    chainPem: certPem + chain.intermediatePem,
    keyPem: '',
    serial: leaf.serialNumber.toLowerCase(),
    thumbprint: '',
    notBefore: now,
    notAfter: now + HOUR,
    receivedAt: now,
  }
})

const urls = () => ({
  cdp: `${SERVER}/cdp/inter.crl`,
  inter: `${SERVER}/v1/ca/${keyIdHex(inter)}/crl`,
  v1: `${SERVER}/v1/crl`,
  root: `${SERVER}/v1/ca/${keyIdHex(root)}/crl`,
})

describe('where the CRLs of a chain are', () => {
  it('the path is the issuing CA then the root; each CA by its child’s CDP, then its key id', () => {
    const path = caPath(leaf, [inter], anchors)
    expect(path.map((p) => p.ca.subject)).toEqual([inter.subject, root.subject])
    expect(distributionPoints(leaf)).toEqual([urls().cdp])
    expect(crlUrls(path[0]!, SERVER, true)).toEqual([urls().cdp, urls().inter, urls().v1])
    expect(crlUrls(path[1]!, SERVER, false)).toEqual([urls().root])
  })
})

describe('CrlKeeper', () => {
  it('publishes the issuing CA’s CRL (PEM and DER) and all CRLs of the chain, which openssl verifies', async () => {
    const u = urls()
    const served = crl(chain.intermediate, 5n, { serials: ['0abc'] })
    const { k, warnings, fetched } = keeper(
      new Map([
        [u.cdp, served],
        [u.root, crl(chain.root, 1n)],
      ]),
    )
    await k.refresh(cred, anchors)
    expect(fetched).toEqual([u.cdp, u.root]) // the CDP first; nothing more once one verifies
    expect(warnings).toEqual([])
    const files = k.files()
    expect(Buffer.from(files['crl.der']!).equals(Buffer.from(served))).toBe(true)
    expect(files['crl.pem']).toBe(derToPem(files['crl.der']!, 'X509 CRL'))
    expect(files['crls.pem']!.match(/BEGIN X509 CRL/g)).toHaveLength(2)
    const pem = tmp.write('crls.pem', files['crls.pem']!)
    const cas = tmp.write('cas.pem', chain.rootPem + chain.intermediatePem)
    const leafFile = tmp.write('leaf.pem', cred.certPem)
    const v = openssl(['verify', '-crl_check_all', '-CRLfile', pem, '-CAfile', cas, leafFile])
    expect(v.code, v.out).toBe(0)
  })

  it('without a root CRL on the server (404): the issuing CA’s alone, quietly, due at half its validity', async () => {
    const u = urls()
    const at = Date.now()
    const { k, warnings } = keeper(
      new Map([[u.v1, crl(chain.intermediate, 2n, { at, validityMs: 2 * HOUR })]]),
    )
    await k.refresh(cred, anchors)
    expect(warnings).toEqual([])
    expect(k.files()['crls.pem']!.match(/BEGIN X509 CRL/g)).toHaveLength(1)
    expect(Math.abs(k.dueAt - (Math.floor(at / 1000) * 1000 + HOUR))).toBeLessThan(1000)
  })

  const refusals: { name: string; bad: () => Uint8Array; why: RegExp }[] = [
    {
      name: 'a tampered signature',
      bad: () => {
        const der = Buffer.from(crl(chain.intermediate, 9n))
        der[der.length - 1]! ^= 1
        return der
      },
      why: /signature/,
    },
    { name: 'another CA’s CRL', bad: () => crl(other.intermediate, 9n), why: /signature|issuer/ },
    {
      name: 'an older CRL number (a replay)',
      bad: () => crl(chain.intermediate, 3n),
      why: /lower than 4/,
    },
    {
      name: 'a stale CRL',
      bad: () => crl(chain.intermediate, 9n, { at: Date.now() - 3 * HOUR }),
      why: /stale/,
    },
    { name: 'not a CRL', bad: () => new Uint8Array([1, 2, 3]), why: /DER|CRL/ },
  ]
  it.each(refusals)(
    'refuses $name, keeps the CRL published before and retries soon',
    async ({ bad, why }) => {
      const u = urls()
      const table = new Map<string, Uint8Array | Error | undefined>([
        [u.v1, crl(chain.intermediate, 4n)],
      ])
      const { k, warnings } = keeper(table)
      await k.refresh(cred, anchors)
      const before = k.files()
      table.delete(u.v1)
      table.set(u.cdp, bad())
      await k.refresh(cred, anchors)
      expect(warnings.join('\n')).toMatch(why)
      expect(k.files()).toEqual(before)
      expect(k.dueAt - Date.now()).toBeLessThan(5_000) // backoff, not half an hour
    },
  )

  it('a server that cannot be reached: the CRL published before stays', async () => {
    const u = urls()
    const table = new Map<string, Uint8Array | Error | undefined>([
      [u.v1, crl(chain.intermediate, 1n)],
    ])
    const { k, warnings } = keeper(table)
    await k.refresh(cred, anchors)
    const before = k.files()
    for (const url of Object.values(u)) table.set(url, new Error('ECONNREFUSED'))
    await k.refresh(cred, anchors)
    expect(warnings.join('\n')).toMatch(/ECONNREFUSED.*keeping the one published/)
    expect(k.files()).toEqual(before)
  })

  it('restores the CRLs of a previous run that still belong to the chain', () => {
    const { k } = keeper(new Map())
    const pem =
      derToPem(crl(chain.intermediate, 7n), 'X509 CRL') + derToPem(crl(other.root, 1n), 'X509 CRL')
    k.restore(pem, cred, anchors)
    expect(k.files()['crls.pem']!.match(/BEGIN X509 CRL/g)).toHaveLength(1)
    expect(k.key()).toMatch(/^7@/)
  })
})
