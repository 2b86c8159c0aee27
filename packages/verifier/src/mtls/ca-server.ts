import { checkServerIdentity, type PeerCertificate } from 'node:tls'

/**
 * The extended key usage only the certbound CA's own TLS server certificate carries
 * (`id-kp-certboundServer`, a UUID-based OID per ITU-T X.667).
 */
export const CERTBOUND_SERVER_EKU = '2.25.10365697400001155744715433452568906552'

/**
 * `checkServerIdentity` for connections to the certbound server itself (agent, admin CLI,
 * verifier JWKS and introspection fetches). Workload certificates chain to the same CA and may
 * carry DNS names an entry allows — `localhost`, say — so the hostname alone cannot tell the CA
 * from a workload posing as it to steal join tokens or serve its own JWKS: the CA server's
 * certificate is the only one with the certbound server EKU. Whether that certificate was
 * revoked (its key stolen) is checked after the handshake, against the CA's CRL
 * ({@link CaServerTrust}).
 */
export function checkCaServerIdentity(host: string, cert: PeerCertificate): Error | undefined {
  const err = checkServerIdentity(host, cert)
  if (err) return err
  if ((cert.ext_key_usage ?? []).includes(CERTBOUND_SERVER_EKU)) return undefined
  const uri = /(?:^|, )URI:([^,]*)/.exec(cert.subjectaltname ?? '')
  const what = uri
    ? `the certificate of ${uri[1]}, a workload`
    : 'a certificate without the certbound server marker (EKU id-kp-certboundServer)'
  return new Error(`${host} presented ${what}, not the certbound server's`)
}
