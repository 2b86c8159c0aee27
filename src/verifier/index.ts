/**
 * `certbound/verifier`: verification of certificate-bound access tokens (RFC 8705) for
 * resource servers. Depends on jose, node:crypto and undici only — never on the CA's database
 * code, so a resource server does not need native SQLite.
 *
 * @packageDocumentation
 */
export { validateClientCertificate } from './chain.js'
export type { TrustStore } from './chain.js'
export { VerifyError } from './errors.js'
export type { VerifyErrorCode } from './errors.js'
export { parseClientCert, parseEscapedPem, parseXfcc } from './forwarded.js'
export { guardHandshakes } from './handshake-guard.js'
export type { HandshakeCounters, HandshakeGuard, HandshakeGuardOptions } from './handshake-guard.js'
export type { ForwardedCertificate, ForwardedFormat } from './forwarded.js'
export type { IntrospectionOptions } from './introspection.js'
export type { JwksCacheOptions } from './jwks.js'
export { DEFAULT_ALGORITHMS } from './options.js'
export type { VerifierOptions } from './options.js'
export type { CertificateInput } from './pem.js'
export { createVerifier, verifyBoundToken } from './verify-access-token.js'
export type { BoundTokenClaims, VerifiedToken, Verifier } from './verify-access-token.js'
