import { X509Certificate } from 'node:crypto'

import { generateKeyPair, privateKeyFromPem, privateKeyToPem } from '../crypto/keys.js'
import type { KeyType } from '../crypto/keys.js'
import { parseCertificate } from '../x509/certificate.js'
import { buildCsr } from '../x509/csr-builder.js'
import { parsePemBundle } from '@certbound/verifier/mtls'
import type { CertificateResponse } from './api.js'
import { checkIssuedToUs } from './trust.js'

/** The workload's certificate, its chain and private key, with what scheduling needs. */
export interface Credential {
  readonly certPem: string
  /** Leaf + intermediate: what the TLS client presents. */
  readonly chainPem: string
  readonly keyPem: string
  /** Lower-case hex, as the API prints it. */
  readonly serial: string
  readonly thumbprint: string
  readonly notBefore: number
  readonly notAfter: number
  /** When the agent received it (ms); renewal is scheduled from here. */
  readonly receivedAt: number
}

/** A fresh private key (never leaves this machine) and a CSR naming the SPIFFE ID. */
export async function newKeyAndCsr(
  keyType: KeyType,
  spiffeId: string,
  dnsNames: readonly string[] = [],
): Promise<{ keyPem: string; csr: string }> {
  const { privateKey, publicKey } = await generateKeyPair(keyType)
  const csr = buildCsr({ privateKey, publicKey, uris: [spiffeId], dnsNames })
  return { keyPem: privateKeyToPem(privateKey), csr }
}

/**
 * Checks that `certPem` is a certificate for `spiffeId` whose key is `keyPem`, and returns the
 * credential. Throws an Error with the reason otherwise.
 */
export function toCredential(
  pems: { certPem: string; chainPem: string; keyPem: string },
  spiffeId: string,
  receivedAt: number,
): Credential {
  const cert = new X509Certificate(pems.certPem)
  if (!cert.checkPrivateKey(privateKeyFromPem(pems.keyPem))) {
    throw new Error('the certificate does not match the private key')
  }
  const view = parseCertificate(cert.raw)
  if (!view.uris.includes(spiffeId)) {
    const names = view.uris.join(', ') || 'no SPIFFE ID'
    throw new Error(`the certificate is for ${names}, not ${spiffeId}`)
  }
  const chainLeaf = new X509Certificate(pems.chainPem)
  if (!chainLeaf.raw.equals(cert.raw)) {
    throw new Error('chain.pem does not start with the certificate')
  }
  return {
    ...pems,
    serial: view.serialHex.toLowerCase(),
    thumbprint: view.thumbprint,
    notBefore: view.notBefore.getTime(),
    notAfter: view.notAfter.getTime(),
    receivedAt,
  }
}

/**
 * The credential from an enrol/renew answer and the key the CSR was made with, once its
 * certificate is known to chain to the agent's trust anchors (a server that is not the CA,
 * or misbehaves, cannot hand the workload a certificate of another CA).
 */
export function credentialFromResponse(
  res: CertificateResponse,
  keyPem: string,
  spiffeId: string,
  receivedAt: number,
  anchors: readonly X509Certificate[],
): Credential {
  if (typeof res.certificate !== 'string' || typeof res.chain !== 'string') {
    throw new Error('the answer has no certificate or chain')
  }
  const cred = toCredential(
    { certPem: res.certificate, chainPem: res.chain, keyPem },
    spiffeId,
    receivedAt,
  )
  const chain = parsePemBundle(res.chain, 'the chain')
  checkIssuedToUs(new X509Certificate(res.certificate), chain.slice(1), anchors)
  return cred
}
