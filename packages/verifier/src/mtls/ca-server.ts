import { checkServerIdentity, type PeerCertificate } from 'node:tls'

/**
 * `checkServerIdentity` for connections to the certbound server itself (agent, admin CLI,
 * verifier JWKS and introspection fetches). Workload certificates chain to the same CA and may
 * carry DNS names an entry allows — `localhost`, say — so the hostname alone cannot tell the CA
 * from a workload posing as it to steal join tokens or serve its own JWKS. The server's
 * certificate is the one leaf of this CA without a SPIFFE ID: every workload and admin
 * certificate carries one as its URI SAN.
 */
export function checkCaServerIdentity(host: string, cert: PeerCertificate): Error | undefined {
  const err = checkServerIdentity(host, cert)
  if (err) return err
  const uri = /(?:^|, )URI:([^,]*)/.exec(cert.subjectaltname ?? '')
  if (uri) {
    return new Error(
      `${host} presented the certificate of ${uri[1]}, a workload, not the certbound server's`,
    )
  }
  return undefined
}
