/**
 * `@certbound/verifier/mtls`: the mTLS building blocks the certbound CA and this verifier share,
 * so that both read a client certificate the same way: the peer certificate and chain of a TLS
 * socket, forwarded certificate headers from trusted proxies (RFC 9440 `Client-Cert`, Envoy
 * XFCC, nginx's escaped PEM), the proxy address matcher, the chain check, and the identity check
 * of the CA server itself (its certificate marker and its revocation by the CA's CRL), and
 * the guard that keeps hostile TLS handshakes cheap. Node built-ins and undici only.
 *
 * Internal but stable: the CA imports this subpath, so it follows the package's semver like the
 * public entry points. Resource servers should use `@certbound/verifier` and
 * `@certbound/verifier/hono`, which apply all of this for them.
 *
 * @packageDocumentation
 */
export { CERTBOUND_SERVER_EKU, checkCaServerIdentity } from './ca-server.js'
export { CaServerTrust } from './ca-server-trust.js'
export type { CaServerTrustOptions } from './ca-server-trust.js'
export { checkCrl } from './crl.js'
export type { CheckedCrl } from './crl.js'
export { guardHandshakes } from './handshake-guard.js'
export type { HandshakeCounters, HandshakeGuard, HandshakeGuardOptions } from './handshake-guard.js'
export { validateClientCertificate } from './chain.js'
export type { TrustStore } from './chain.js'
export { parseClientCert, parseEscapedPem, parseXfcc } from './forwarded.js'
export type { ForwardedCertificate, ForwardedFormat } from './forwarded.js'
export {
  createCertificateResolver,
  createProxyMatcher,
  forwardedCertificateHeaders,
  normalizeAddress,
  socketCertificate,
} from './peer.js'
export type {
  CertificateResolver,
  CertificateSource,
  ForwardingOptions,
  Presented,
} from './peer.js'
export { parsePemBundle, pemToDers, toCertificate } from './pem.js'
export type { CertificateInput } from './pem.js'
export { x5tS256 } from './thumbprint.js'
export { VerifyError, VERIFY_ERROR_CODES } from '../errors.js'
export type { VerifyErrorCode } from '../errors.js'
