/**
 * Every code a {@link VerifyError} carries. The first three have the same names as the CA's own
 * codes for the same refusals; the last two exist only on the resource-server side.
 *
 * - `ERR_TOKEN_INVALID`: bad signature, `alg`, `typ`, `iss`, `aud`, time window, unknown `kid`,
 *   missing claims, or inactive at introspection.
 * - `ERR_TOKEN_BINDING_MISMATCH`: `cnf["x5t#S256"]` is not the presented certificate's thumbprint.
 * - `ERR_CLIENT_CERT_REQUIRED`: no certificate, an untrusted one (chain, validity window, CA:true),
 *   or a forwarded certificate header that may not be trusted (spoofing attempt).
 * - `ERR_INSUFFICIENT_SCOPE`: a valid token that lacks a scope the route requires.
 * - `ERR_VERIFIER_UNAVAILABLE`: the JWKS or introspection endpoint could not be reached or
 *   answered nonsense. The request is refused (fail closed), but the token is not blamed.
 */
export const VERIFY_ERROR_CODES = [
  'ERR_TOKEN_INVALID',
  'ERR_TOKEN_BINDING_MISMATCH',
  'ERR_CLIENT_CERT_REQUIRED',
  'ERR_INSUFFICIENT_SCOPE',
  'ERR_VERIFIER_UNAVAILABLE',
] as const

/** One of {@link VERIFY_ERROR_CODES}. */
export type VerifyErrorCode = (typeof VERIFY_ERROR_CODES)[number]

/**
 * The only error the verifier throws for a refused request. Misuse of the API (bad options)
 * throws `TypeError` instead.
 *
 * @example
 * ```ts
 * try {
 *   await verifier.verify(token, socket.getPeerX509Certificate())
 * } catch (err) {
 *   if (err instanceof VerifyError && err.code === 'ERR_TOKEN_BINDING_MISMATCH') {
 *     // the token was issued for another certificate
 *   }
 * }
 * ```
 */
export class VerifyError extends Error {
  readonly code: VerifyErrorCode
  override readonly name = 'VerifyError'
  constructor(code: VerifyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}
