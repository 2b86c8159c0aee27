import { z } from 'zod'
import { parseDuration } from '../config/duration.js'
import { REVOCATION_REASONS } from '../ca/reasons.js'
import type { TtlCap } from '../db/types.js'
import { CAError } from '../errors.js'
import { pemToDer } from '../x509/pem.js'

/*
 * The JSON request bodies of the contract's API, as zod schemas: the edge decodes and checks
 * shapes here, and hands the domain typed commands (DER bytes, milliseconds). Semantic checks
 * that need configuration or state (a SPIFFE ID's trust domain, a ttl over its cap, a DNS name
 * an entry allows) stay in the domain.
 */

const DURATION_HINT = 'a duration string such as "30s", "15m", "1h" or "7d"'

/** A duration string, as milliseconds and as written. */
const duration = z.unknown().transform((value, ctx): TtlCap => {
  const ms = typeof value === 'string' ? parseDuration(value) : undefined
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `must be ${DURATION_HINT}` })
    return z.NEVER
  }
  return { text: value as string, ms }
})

const csrPem = z.unknown().transform((value, ctx) => {
  if (typeof value !== 'string') {
    ctx.addIssue({ code: 'custom', message: 'must be a PEM CERTIFICATE REQUEST string' })
    return z.NEVER
  }
  // PEM errors keep their own code and message (ERR_PEM_INVALID).
  return pemToDer(value, 'CERTIFICATE REQUEST')
})

const stringList = (what: string, max: number) =>
  z.array(z.string({ error: `must be an array of ${what}` }), {
    error: `must be an array of at most ${max} ${what}`,
  })

/** POST /v1/enroll and /v1/renew: `{"csr": PEM, "ttl"?}`; other members are ignored. */
export const certificateRequestBody = z.object({
  csr: csrPem,
  ttl: duration.optional(),
})

// The subject CN of an entry's certificates (X.520 ub-common-name: 64), printable, no controls.
const subjectCn = z
  .string({ error: 'must be a string' })
  .regex(/^[^\u0000-\u001f\u007f]{1,64}$/u, 'must be 1 to 64 characters without control characters')
/** POST /v1/enroll with an OIDC identity token: the SPIFFE ID of the entry it enrols for. */
export const oidcEnrollBody = z.object({
  spiffe_id: z.string({ error: "is required with an OIDC token (the entry's SPIFFE ID)" }),
})

/** An entry's `oidc` rule: `{"issuer": name, "claims": {claim: pattern}}` (checked in the domain). */
const oidcRule = z.strictObject(
  {
    issuer: z.string({ error: 'is required (an issuer name of federation.oidc_issuers)' }),
    claims: z.record(z.string(), z.string({ error: 'must map claim names to strings' }), {
      error: 'must be an object of claim names and patterns',
    }),
  },
  { error: 'must be null or {"issuer", "claims"}' },
)

export const entryCreateBody = z.strictObject({
  spiffe_id: z.string({ error: 'is required (a string)' }),
  dns_names: stringList('DNS names', 100).optional(),
  ttl: duration.optional(),
  scopes: stringList('scope tokens', 100).nullable().optional(),
  subject_cn: subjectCn.optional(),
  renew_after_expiry: duration.nullable().optional(),
  oidc: oidcRule.nullable().optional(),
})

export const entryPatchBody = z.strictObject({
  enabled: z.boolean({ error: 'must be true or false' }).optional(),
  dns_names: stringList('DNS names', 100).optional(),
  ttl: duration.nullable().optional(),
  scopes: stringList('scope tokens', 100).nullable().optional(),
  subject_cn: subjectCn.nullable().optional(),
  renew_after_expiry: duration.nullable().optional(),
  oidc: oidcRule.nullable().optional(),
})

export const joinTokenBody = z.strictObject({ ttl: duration.optional() })

const HOLD = ['certificateHold', 'removeFromCRL']

export const revokeBody = z.strictObject({
  reason: z
    .unknown()
    .transform((value, ctx) => {
      if (typeof value === 'string' && HOLD.includes(value)) {
        ctx.addIssue({
          code: 'custom',
          message: `"${value}" is refused: certbound does not put certificates on hold`,
        })
        return z.NEVER
      }
      if (typeof value !== 'string' || !(REVOCATION_REASONS as readonly string[]).includes(value)) {
        ctx.addIssue({ code: 'custom', message: `must be one of ${REVOCATION_REASONS.join(', ')}` })
        return z.NEVER
      }
      return value as (typeof REVOCATION_REASONS)[number]
    })
    .optional(),
})

/** Parses `value` with `schema`, or throws ERR_BAD_REQUEST naming the first offending field. */
export function parseBody<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!.slice(0, 64)
    throw new CAError('ERR_BAD_REQUEST', `unknown field "${key}"`)
  }
  const field = issue.path.map(String).join('.')
  throw new CAError('ERR_BAD_REQUEST', field ? `"${field}" ${issue.message}` : issue.message)
}
