/**
 * Coded domain errors (jose style). Domain code throws these; only `http/errors.ts`
 * maps a code to a status, a problem+json body or an RFC 6749 error.
 */
export type CAErrorCode =
  | 'ERR_BAD_REQUEST' // malformed body, JSON, form, parameter
  | 'ERR_PEM_INVALID'
  | 'ERR_CSR_INVALID' // cannot parse, bad signature (no proof of possession)
  | 'ERR_POLICY_DENIED' // identity mismatch, CA:true, DNS not allowed, key refused
  | 'ERR_KEY_UNSUPPORTED' // key type or size outside allowed_key_types
  | 'ERR_TTL_TOO_LONG'
  | 'ERR_NOT_FOUND'
  | 'ERR_METHOD_NOT_ALLOWED'
  | 'ERR_CONFLICT'
  | 'ERR_JOIN_TOKEN_INVALID' // unknown, used, expired
  | 'ERR_CLIENT_CERT_REQUIRED' // no / untrusted / expired / unknown / revoked client certificate
  | 'ERR_FORBIDDEN' // a valid certificate that may not do this
  | 'ERR_ENTRY_DISABLED'
  | 'ERR_CERT_REVOKED'
  | 'ERR_CERT_EXPIRED'
  | 'ERR_PAYLOAD_TOO_LARGE'
  | 'ERR_UNSUPPORTED_MEDIA_TYPE' // a body that is not in the media type the route takes
  | 'ERR_CA_EXISTS'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_DB_TOO_NEW'
  // storage (any backend)
  | 'ERR_STORAGE_CONFLICT' // a unique or primary-key constraint refused the write
  | 'ERR_STORAGE_UNAVAILABLE' // busy beyond database.busy_timeout, unreachable, failing over
  | 'ERR_STORAGE_FULL' // no space left for the write
  | 'ERR_INVALID_CURSOR' // a list cursor this server did not issue
  // OAuth (RFC 6749 §5.2)
  | 'ERR_INVALID_CLIENT'
  | 'ERR_INVALID_GRANT'
  | 'ERR_INVALID_SCOPE'
  | 'ERR_UNSUPPORTED_GRANT_TYPE'
  | 'ERR_INVALID_OAUTH_REQUEST'
  // resource-server verification
  | 'ERR_TOKEN_INVALID'
  | 'ERR_TOKEN_BINDING_MISMATCH'

export class CAError extends Error {
  readonly code: CAErrorCode
  override readonly name = 'CAError'
  constructor(code: CAErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

export function isCAError(e: unknown, code?: CAErrorCode): e is CAError {
  return e instanceof CAError && (code === undefined || e.code === code)
}
