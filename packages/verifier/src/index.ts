/**
 * `@certbound/verifier`: verification of certificate-bound access tokens (RFC 8705) for
 * resource servers. Depends on jose, node:crypto and undici only — never on the CA's code, so a
 * resource server does not need native SQLite, pkijs or a logger it did not choose.
 *
 * @packageDocumentation
 */
export { validateClientCertificate } from './mtls/chain.js'
export type { TrustStore } from './mtls/chain.js'
export { VERIFY_ERROR_CODES, VerifyError } from './errors.js'
export type { VerifyErrorCode } from './errors.js'
export { parseClientCert, parseEscapedPem, parseXfcc } from './mtls/forwarded.js'
export type { ForwardedCertificate, ForwardedFormat } from './mtls/forwarded.js'
export { guardHandshakes } from './mtls/handshake-guard.js'
export type {
  HandshakeCounters,
  HandshakeGuard,
  HandshakeGuardOptions,
} from './mtls/handshake-guard.js'
export type { IntrospectionOptions } from './introspection.js'
export type { JwksCacheOptions } from './jwks.js'
export { DEFAULT_ALGORITHMS } from './options.js'
export type { VerifierOptions } from './options.js'
export type { CertificateInput } from './mtls/pem.js'
export { createVerifier, verifyBoundToken } from './verify-access-token.js'
export type { BoundTokenClaims, VerifiedToken, Verifier } from './verify-access-token.js'
