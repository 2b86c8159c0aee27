import type { Authority, CertificateRequest, EnrollmentGrant } from '../ca/authority.js'
import { CAError } from '../errors.js'
import { isJwtShaped } from '../federation/verify.js'

/*
 * How an enrolment client proves which entry it may enrol, as a list of authenticators tried
 * in order: the first that claims the Authorization header's scheme and shape decides. Today
 * a join token as a Bearer token (`/v1/enroll`'s form) or as the password of Basic with the
 * entry id as the user (EST, RFC 7030 §3.2.3); an OIDC identity token (issue 13) is a third
 * authenticator that claims Bearer credentials shaped like a JWS (RFC 7515 §7.1: three
 * base64url parts joined by dots, which a join token never has) and reads the CSR's URI SAN
 * through `context.request` to find its entry.
 */

/** An Authorization header split into its scheme (lower case) and credentials (RFC 9110 §11.4). */
export interface Authorization {
  readonly scheme: string
  readonly credentials: string
}

/** What an authenticated enrolment may be issued: a join token's or an OIDC token's grant. */
export type EnrolmentGrant = EnrollmentGrant

/** What an authenticator may consult beyond the header. */
export interface EnrolmentContext {
  /** The decoded certificate request, read (and checked for shape) on first call. */
  readonly request: () => Promise<CertificateRequest>
}

/** One kind of enrolment credential. */
export interface EnrolmentAuthenticator {
  /** Its `WWW-Authenticate` challenge (RFC 9110 §11.6.1); kinds of one scheme share one. */
  readonly challenge: string
  /** How a client sends this credential, for the message of a 401 without one. */
  readonly usage: string
  /** Whether the header is this kind's (scheme and shape only; nothing is checked yet). */
  claims(auth: Authorization): boolean
  /** Checks the credential; throws a 401 CAError when it does not hold. */
  authenticate(auth: Authorization, context: EnrolmentContext): Promise<EnrolmentGrant>
}

// Join tokens are base64url (CONTRACT "Access tokens"), at most 512 characters here.
const JOIN_TOKEN = /^[A-Za-z0-9_-]{1,512}$/
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

const refused = (message: string) => new CAError('ERR_JOIN_TOKEN_INVALID', message)

/** RFC 9110 §11.4: `scheme 1*SP credentials`, the scheme case-insensitive. */
export function parseAuthorization(header: string | undefined): Authorization | undefined {
  const m = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +(\S+)$/.exec(header?.trim() ?? '')
  return m ? { scheme: m[1]!.toLowerCase(), credentials: m[2]! } : undefined
}

/** `Authorization: Bearer <join token>`. */
export function joinTokenBearer(authority: Authority): EnrolmentAuthenticator {
  return {
    challenge: 'Bearer realm="certbound"',
    usage: '"Authorization: Bearer <join token>"',
    claims: (auth) => auth.scheme === 'bearer' && JOIN_TOKEN.test(auth.credentials),
    authenticate: (auth) => authority.authenticateJoinToken(auth.credentials),
  }
}

/**
 * `Authorization: Bearer <OIDC identity token>` (CONTRACT "Enrolment by an OIDC identity
 * token"): the entry is the one of the CSR's SPIFFE ID, so the CSR is read before the token
 * is checked; a CSR without exactly one URI SAN is a 400 and spends nothing.
 */
export function oidcBearer(authority: Authority): EnrolmentAuthenticator {
  return {
    challenge: 'Bearer realm="certbound"',
    usage: '"Authorization: Bearer <OIDC identity token>"',
    claims: (auth) =>
      auth.scheme === 'bearer' && auth.credentials.length <= 16384 && isJwtShaped(auth.credentials),
    async authenticate(auth, context) {
      const { csr } = await context.request()
      return authority.authenticateOidcTokenForCsr(auth.credentials, csr)
    },
  }
}

/**
 * `Authorization: Basic base64(<entry id>:<join token>)` (RFC 7617), for EST clients that
 * only do Basic. The token must belong to that entry: a token alone is not enough here.
 */
export function joinTokenBasic(authority: Authority): EnrolmentAuthenticator {
  return {
    challenge: 'Basic realm="certbound EST", charset="UTF-8"',
    usage: 'Basic with the entry id as the user and the join token as the password',
    claims: (auth) => auth.scheme === 'basic',
    async authenticate(auth) {
      const b64 = auth.credentials
      const pair =
        b64.length % 4 === 0 && BASE64.test(b64) ? Buffer.from(b64, 'base64').toString() : ''
      const colon = pair.indexOf(':')
      const [entryId, token] = [pair.slice(0, colon), pair.slice(colon + 1)]
      if (colon < 1 || !JOIN_TOKEN.test(token)) {
        throw refused('Basic credentials must be the entry id as the user and the join token')
      }
      const grant = await authority.authenticateJoinToken(token)
      if (grant.entry.id !== entryId) {
        throw refused('the join token is not one of this entry (the Basic user is the entry id)')
      }
      return grant
    },
  }
}

/** The challenges of a 401, one per scheme, in the order of the authenticators. */
export function challenges(authenticators: readonly EnrolmentAuthenticator[]): string[] {
  return [...new Set(authenticators.map((a) => a.challenge))]
}

/** Authenticates an enrolment with the first authenticator that claims the header. */
export async function authenticateEnrolment(
  header: string | undefined,
  authenticators: readonly EnrolmentAuthenticator[],
  context: EnrolmentContext,
): Promise<EnrolmentGrant> {
  const auth = parseAuthorization(header)
  const authenticator = auth && authenticators.find((a) => a.claims(auth))
  if (!auth || !authenticator) {
    throw refused(`authenticate with ${authenticators.map((a) => a.usage).join(', or ')}`)
  }
  return authenticator.authenticate(auth, context)
}
