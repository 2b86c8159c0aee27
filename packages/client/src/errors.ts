/**
 * Every code a {@link ClientError} carries.
 *
 * - `ERR_GENERATION_MISSING`: the directory has no `..data` link, or the generation it points
 *   at lacks a file (`cert.pem`/`chain.pem`, `key.pem`, `bundle.pem`, `token.json`).
 * - `ERR_GENERATION_INVALID`: a file of the generation does not parse (PEM, `token.json`).
 * - `ERR_GENERATION_MISMATCH`: the files do not belong together: the key is not the
 *   certificate's, or the token is bound to another certificate.
 * - `ERR_CLIENT_CLOSED`: `fetch` after `close()`.
 */
export const CLIENT_ERROR_CODES = [
  'ERR_GENERATION_MISSING',
  'ERR_GENERATION_INVALID',
  'ERR_GENERATION_MISMATCH',
  'ERR_CLIENT_CLOSED',
] as const

/** One of {@link CLIENT_ERROR_CODES}. */
export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number]

/**
 * The error `@certbound/client` throws (or hands to `onError`) when it cannot present a
 * consistent generation. Misuse of the API (a non-HTTPS URL) throws `TypeError` instead.
 *
 * @example
 * ```ts
 * try {
 *   await createBoundFetch({ dir: '/var/run/certbound' })
 * } catch (err) {
 *   if (err instanceof ClientError && err.code === 'ERR_GENERATION_MISSING') {
 *     // the agent has not written a first generation yet
 *   }
 * }
 * ```
 */
export class ClientError extends Error {
  readonly code: ClientErrorCode
  override readonly name = 'ClientError'
  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}
