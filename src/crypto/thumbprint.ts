import { createHash } from 'node:crypto'

// RFC 8705 §3.1 thumbprint: one definition for the CA that binds tokens and the verifier that
// checks the binding.
export { x5tS256 } from '@certbound/verifier/mtls'

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}
