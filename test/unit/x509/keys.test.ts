import { createPrivateKey, createPublicKey, generateKeyPairSync, verify } from 'node:crypto'

import { beforeAll, describe, expect, it } from 'vitest'

import {
  KEY_TYPES,
  generateKeyPair,
  jwsAlgFor,
  keyTypeOf,
  privateKeyToPem,
  publicKeyFromSpki,
  signWithKey,
  spkiDer,
} from '../../../src/crypto/keys.js'
import type { KeyType } from '../../../src/crypto/keys.js'

// RSA 3072/4096 generation is slow: the loop uses the fast types, 3072 is checked once below.
const FAST: readonly KeyType[] = ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048']

describe('keys', () => {
  const pairs = new Map<KeyType, Awaited<ReturnType<typeof generateKeyPair>>>()
  beforeAll(async () => {
    for (const t of FAST) pairs.set(t, await generateKeyPair(t))
  })

  it('KEY_TYPES lists the six supported types', () => {
    expect(KEY_TYPES).toEqual(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096'])
  })

  it.each(FAST)('%s: generate, classify, PEM and SPKI round trips, sign', (t) => {
    const { privateKey, publicKey } = pairs.get(t)!
    expect(keyTypeOf(privateKey)).toBe(t)
    expect(keyTypeOf(publicKey)).toBe(t)
    const pem = privateKeyToPem(privateKey)
    expect(pem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/)
    expect(keyTypeOf(createPrivateKey(pem))).toBe(t)
    const spki = spkiDer(publicKey)
    expect(Buffer.from(spkiDer(privateKey))).toEqual(Buffer.from(spki))
    expect(publicKeyFromSpki(spki).equals(publicKey)).toBe(true)
    const data = new TextEncoder().encode('to be signed')
    const sig = signWithKey(privateKey, data)
    const hash = t === 'ec-p384' ? 'sha384' : t === 'ed25519' ? null : 'sha256'
    expect(verify(hash, data, publicKey, sig)).toBe(true)
  })

  it('rsa-3072 is classified by modulus length', async () => {
    const { privateKey } = await generateKeyPair('rsa-3072')
    expect(keyTypeOf(privateKey)).toBe('rsa-3072')
  })

  it('jwsAlgFor', () => {
    expect(KEY_TYPES.map(jwsAlgFor)).toEqual(['ES256', 'ES384', 'EdDSA', 'RS256', 'RS256', 'RS256'])
  })

  it('keyTypeOf is undefined for unsupported keys', () => {
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey
    const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey
    const ed448 = generateKeyPairSync('ed448').publicKey
    const x25519 = generateKeyPairSync('x25519').publicKey
    for (const k of [k1, p521, rsa1024, ed448, x25519]) expect(keyTypeOf(k)).toBeUndefined()
    expect(() => signWithKey(generateKeyPairSync('ed448').privateKey, new Uint8Array(1))).toThrow(
      TypeError,
    )
    expect(() => privateKeyToPem(createPublicKey(pairs.get('ec-p256')!.privateKey))).toThrow(
      TypeError,
    )
  })
})
