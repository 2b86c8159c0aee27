import type { KeyObject } from 'node:crypto'

import { spkiDer } from '../crypto/keys.js'

// Exporting a key's SPKI through OpenSSL costs about as much as an ECDSA signature. The fast
// CSR reader already holds the canonical bytes of the key it imported, so it records them here
// and issuance reuses them. KeyObjects are immutable, so the bytes stay right for the key.
const known = new WeakMap<KeyObject, Uint8Array>()

/** Records `der` as the canonical SPKI of `key` (callers guarantee it is node's encoding). */
export function rememberSpki(key: KeyObject, der: Uint8Array): void {
  known.set(key, der)
}

/** DER SubjectPublicKeyInfo of a public key (remembered, else exported). Do not mutate it. */
export function spkiOfKey(key: KeyObject): Uint8Array {
  let der = known.get(key)
  if (der === undefined) {
    der = spkiDer(key)
    if (key.type === 'public') known.set(key, der)
  }
  return der
}
