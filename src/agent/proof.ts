import { X509Certificate, createPrivateKey, randomUUID, sign } from 'node:crypto'

import { hashFor, jwsAlgFor, requireKeyType } from '../crypto/keys.js'
import type { Credential } from './credential.js'

/** A proof lives two minutes: the server takes at most five (CONTRACT "Lineages"). */
const LIFETIME_S = 120

const b64json = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

/**
 * The proof of possession for a renewal after expiry: a compact JWS (RFC 7515) signed by the
 * expired certificate's key, the certificate in `x5c` (RFC 7515 §4.1.6), claims aud (the
 * server's `<issuer>/v1/renew`), sub (the SPIFFE ID), iat, exp and a single-use jti.
 */
export function renewalProof(cred: Credential, audience: string, spiffeId: string): string {
  const key = createPrivateKey(cred.keyPem)
  const type = requireKeyType(key)
  const der = new X509Certificate(cred.certPem).raw
  const iat = Math.floor(Date.now() / 1000)
  const header = { alg: jwsAlgFor(type), typ: 'JWT', x5c: [der.toString('base64')] }
  const claims = { aud: audience, sub: spiffeId, iat, exp: iat + LIFETIME_S, jti: randomUUID() }
  const input = `${b64json(header)}.${b64json(claims)}`
  // ECDSA signatures are r||s in JWS (RFC 7518 §3.4), not DER.
  const signature = sign(hashFor(type), Buffer.from(input), {
    key,
    ...(key.asymmetricKeyType === 'ec' && { dsaEncoding: 'ieee-p1363' as const }),
  })
  return `${input}.${signature.toString('base64url')}`
}
