// Fixed key pairs for golden and property tests: three per key type, committed so that the
// encoders' output is reproducible and the tests spend no time generating RSA keys.
import { createPublicKey, createPrivateKey } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'

import { KEY_TYPES } from '../../../src/crypto/keys.js'
import type { KeyType } from '../../../src/crypto/keys.js'

export interface FixtureKey {
  readonly type: KeyType
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

const pems = JSON.parse(
  readFileSync(new URL('./fixtures/keys.json', import.meta.url), 'utf8'),
) as Record<KeyType, string[]>

/** Three key pairs for each supported key type, always the same ones. */
export const FIXTURE_KEYS: Readonly<Record<KeyType, readonly FixtureKey[]>> = Object.fromEntries(
  KEY_TYPES.map((type) => [
    type,
    pems[type].map((pem) => {
      const privateKey = createPrivateKey(pem)
      return { type, privateKey, publicKey: createPublicKey(privateKey) }
    }),
  ]),
) as Record<KeyType, FixtureKey[]>
