import { generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto'
import type { KeyType } from '../../src/crypto/keys.js'
import { syncRate } from '../lib/measure.js'
import type { Report } from '../lib/report.js'

/**
 * Section 1: what one core can do with node:crypto for the key types the bench's CA uses.
 * An issuance costs one CSR signature check (the workload's key) and one certificate signature
 * (the CA's key); a token grant one JWS signature (the token-signing key); an introspection one
 * JWS check. These limits are the denominators of the later ratios.
 */

export interface CryptoLimits {
  /** Issuances per second per core if nothing but the two signature operations cost. */
  readonly issuance: number
  /** Token grants per second per core if nothing but the JWS signature cost. */
  readonly token: number
  /** Introspections (one JWS verification) per second per core. */
  readonly verify: number
}

function keyPair(type: KeyType): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (type) {
    case 'ec-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' })
    case 'ec-p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' })
    case 'ed25519':
      return generateKeyPairSync('ed25519')
    default:
      return generateKeyPairSync('rsa', { modulusLength: Number(type.slice(4)) })
  }
}

const hashOf = (type: KeyType) =>
  type === 'ed25519' ? null : type === 'ec-p384' ? 'sha384' : 'sha256'

/** Sign and verify rates for one key type over a TBS-sized message (~400 bytes). */
function rates(type: KeyType, ms: number): { sign: number; verify: number } {
  const { privateKey, publicKey } = keyPair(type)
  const hash = hashOf(type)
  const data = randomBytes(400)
  const sig = sign(hash, data, privateKey)
  return {
    sign: syncRate(() => sign(hash, data, privateKey), ms),
    verify: syncRate(() => verify(hash, data, publicKey, sig), ms),
  }
}

export function cryptoSection(
  report: Report,
  types: { ca: KeyType; workload: KeyType; token: KeyType },
  ms: number,
): CryptoLimits {
  const S = '1. crypto limits (node:crypto, one core)'
  const measured = new Map<KeyType, { sign: number; verify: number }>()
  const get = (t: KeyType) => {
    if (!measured.has(t)) measured.set(t, rates(t, ms))
    return measured.get(t)!
  }
  for (const t of new Set([types.ca, types.workload, types.token])) {
    const r = get(t)
    report.add({ section: S, name: `${t} sign`, value: r.sign, unit: '/s' })
    report.add({ section: S, name: `${t} verify`, value: r.verify, unit: '/s' })
  }
  const issuance = 1 / (1 / get(types.workload).verify + 1 / get(types.ca).sign)
  const token = get(types.token).sign
  const verifyRate = get(types.token).verify
  report.add({
    section: S,
    name: `issuance limit (${types.workload} CSR verify + ${types.ca} sign)`,
    value: issuance,
    unit: '/s',
  })
  report.add({
    section: S,
    name: `token limit (${types.token} JWS sign)`,
    value: token,
    unit: '/s',
  })
  report.add({
    section: S,
    name: `introspection limit (${types.token} JWS verify)`,
    value: verifyRate,
    unit: '/s',
  })
  return { issuance, token, verify: verifyRate }
}
