/** Longest SPIFFE ID accepted (SPIFFE ID spec §2.3 recommends at most 2048 bytes). */
export const MAX_SPIFFE_ID_LENGTH = 2048

const TRUST_DOMAIN = /^[a-z0-9._-]+$/
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/

/**
 * Validates a SPIFFE ID as a raw string (SPIFFE ID spec §2). `new URL()` is not used on
 * purpose: it lower-cases, resolves `..` and percent-decodes, so what it accepts is not
 * what a certificate would carry. Returns the reason it is invalid, or undefined.
 */
export function spiffeIdProblem(id: string, trustDomain?: string): string | undefined {
  if (id.length > MAX_SPIFFE_ID_LENGTH) return `longer than ${MAX_SPIFFE_ID_LENGTH} characters`
  if (!id.startsWith('spiffe://')) return 'must start with "spiffe://" (lower case)'
  const rest = id.slice('spiffe://'.length)
  const slash = rest.indexOf('/')
  const domain = slash === -1 ? rest : rest.slice(0, slash)
  if (!TRUST_DOMAIN.test(domain))
    return 'trust domain must be lower-case letters, digits, ".", "-" or "_"'
  if (trustDomain !== undefined && domain !== trustDomain) {
    return `trust domain must be "${trustDomain}"`
  }
  if (slash === -1 || slash === rest.length - 1) return 'path must not be empty'
  for (const segment of rest.slice(slash + 1).split('/')) {
    if (segment === '') return 'path must not contain empty segments or a trailing "/"'
    if (segment === '.' || segment === '..') return 'path must not contain "." or ".." segments'
    if (!PATH_SEGMENT.test(segment)) {
      return 'path segments may hold only letters, digits, ".", "-" and "_" (no query, fragment or percent-encoding)'
    }
  }
  return undefined
}
