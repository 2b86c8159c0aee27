/**
 * Wire shapes fixed by CONTRACT.md, shared by the server and the workload side (the agent
 * imports this file alone, never the server's modules).
 */

/** Enrolment and renewal response. */
export interface CertificateResponse {
  readonly serial: string
  readonly spiffe_id: string
  /** PEM leaf. */
  readonly certificate: string
  /** PEM leaf + intermediate. */
  readonly chain: string
  readonly not_before: string
  readonly not_after: string
  /** The lineage (CONTRACT "Lineages") and this certificate's generation in it (1 at enrolment). */
  readonly lineage_id: string | null
  readonly generation: number | null
}

/** RFC 6749 §5.1 token response (certbound always returns a refresh token). */
export interface TokenResponse {
  readonly access_token: string
  readonly token_type: 'Bearer'
  readonly expires_in: number
  readonly refresh_token: string
  readonly scope?: string
}
