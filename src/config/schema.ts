import { isIP } from 'node:net'
import { createProxyMatcher } from '@certbound/verifier/mtls'
import { z } from 'zod'
import { KEY_TYPES, type KeyType } from '../crypto/keys.js'
import { parseDuration } from './duration.js'
import { DEFAULTS } from './defaults.js'
import { postgresUrlProblem } from '../db/postgres/url.js'

/** A duration string (`30s`, `15m`, `1h`, `7d`) parsed to milliseconds. */
const duration = z.string().transform((text, ctx) => {
  const ms = parseDuration(text)
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration like 30s, 15m, 1h or 7d` })
    return z.NEVER
  }
  return ms
})
// What docs/configuration.md calls these values (scripts/config-reference.ts).
z.globalRegistry.add(duration, { kind: 'duration' })

const keyType = z.enum(KEY_TYPES as [KeyType, ...KeyType[]])

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$/, 'must be HOST:PORT')

// The parser that will match peers decides what is valid, so config and runtime cannot disagree.
const cidr = z.string().refine((s) => {
  try {
    createProxyMatcher([s])
    return true
  } catch {
    return false
  }
}, 'must be an IP address or CIDR')

/** A name the server's TLS certificate carries: an IP address or a DNS name (lower-cased). */
const hostname = z
  .string()
  .refine(
    (s) =>
      isIP(s) !== 0 ||
      /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(
        s,
      ),
    'must be a DNS name or an IP address',
  )
  .transform((s) => (isIP(s) === 0 ? s.toLowerCase() : s))

z.globalRegistry.add(hostPort, { kind: 'HOST:PORT' })
z.globalRegistry.add(cidr, { kind: 'IP or CIDR' })
z.globalRegistry.add(hostname, { kind: 'DNS name or IP' })

const trustDomain = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$/, 'must be a lower-case DNS-like trust domain')

// The driver's own parser decides; its messages never repeat the URL (it may hold a password).
const postgresUrl = z.string().superRefine((text, ctx) => {
  const problem = postgresUrlProblem(text)
  if (problem) ctx.addIssue({ code: 'custom', message: problem })
})

// OpenID Connect Core §2 / Discovery §3: an issuer is an https URL without query or fragment,
// compared as the exact string; the same rules hold for a JWKS URL.
const httpsUrl = z.url({ protocol: /^https$/ }).refine((s) => {
  const u = new URL(s)
  return u.search === '' && u.hash === '' && !s.includes('?') && !s.includes('#')
}, 'must be an https URL without query or fragment')

const oidcIssuer = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be 1-63 lower-case letters, digits, - or _'),
  issuer: httpsUrl,
  audience: z.string().min(1).max(1024),
  jwks_uri: httpsUrl.optional(),
  ca_bundle: z.string().min(1).optional(),
})
z.globalRegistry.add(oidcIssuer, { kind: '`{name, issuer, audience, jwks_uri?, ca_bundle?}`' })

const D = DEFAULTS

const count = (fallback: number) => z.number().int().min(1).max(1_000_000).default(fallback)
const H = D.server.handshakes
const C = D.server.connections

const handshakes = z
  .strictObject({
    max_in_flight: count(H.max_in_flight),
    max_in_flight_per_address: count(H.max_in_flight_per_address),
    max_queued: count(H.max_queued),
    max_queued_per_address: count(H.max_queued_per_address),
    queue_timeout: duration.prefault(H.queue_timeout),
    timeout: duration.prefault(H.timeout),
    max_client_bytes: z.number().int().min(4096).max(1_048_576).default(H.max_client_bytes),
  })
  .prefault({})

const connections = z
  .strictObject({
    max_per_address: count(C.max_per_address),
    headers_timeout: duration.prefault(C.headers_timeout),
    request_timeout: duration.prefault(C.request_timeout),
    keep_alive_timeout: duration.prefault(C.keep_alive_timeout),
  })
  // Node refuses a headers timeout longer than the request timeout.
  .refine((c) => c.headers_timeout <= c.request_timeout, {
    message: 'headers_timeout must not exceed request_timeout',
  })
  .prefault({})

export const configSchema = z.strictObject({
  trust_domain: trustDomain.default(D.trust_domain),
  data_dir: z.string().min(1).default(D.data_dir),
  log_level: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default(D.log_level),
  server: z
    .strictObject({
      listen: hostPort.default(D.server.listen),
      hostnames: z
        .array(hostname)
        .min(1)
        .default([...D.server.hostnames]),
      trusted_proxies: z.array(cidr).default([]),
      trusted_proxy_ids: z.array(z.string()).optional(),
      proxy_admin: z.boolean().default(D.server.proxy_admin),
      forwarded_client_cert: z
        .enum(['client-cert', 'xfcc', 'escaped-pem'])
        .default(D.server.forwarded_client_cert),
      max_body_bytes: z
        .number()
        .int()
        .min(1024)
        .max(16 * 1024 * 1024)
        .default(D.server.max_body_bytes),
      tls_certificate_ttl: duration.prefault(D.server.tls_certificate_ttl),
      // The base of the CRL, OCSP and CA-issuer URLs certificates carry (RFC 5280 §4.2.1.13).
      public_url: z.url({ protocol: /^https?$/ }).optional(),
      workers: z
        .union([z.literal('auto'), z.number().int().min(1).max(256)], {
          error: 'must be an integer from 1 to 256, or "auto"',
        })
        .default(D.server.workers),
      handshakes,
      connections,
    })
    .prefault({}),
  database: z
    .strictObject({
      // Absent: the embedded SQLite file data_dir/certbound.db.
      url: postgresUrl.optional(),
      password_file: z.string().min(1).optional(),
      pool_size: z.number().int().min(1).max(1000).default(D.database.pool_size),
      startup_timeout: duration.prefault(D.database.startup_timeout),
      synchronous: z.enum(['FULL', 'NORMAL']).default('FULL'),
      busy_timeout: duration.prefault(D.database.busy_timeout),
    })
    .prefault({}),
  ca: z
    .strictObject({
      key_type: keyType.default(D.ca.key_type),
      root_ttl: duration.prefault(D.ca.root_ttl),
      intermediate_ttl: duration.prefault(D.ca.intermediate_ttl),
      // Encrypted PKCS#8 CA keys: the passphrase comes from this file or the environment variable
      // CERTBOUND_CA_KEY_PASSPHRASE, never from argv.
      key_passphrase_file: z.string().min(1).optional(),
    })
    .prefault({}),
  certificates: z
    .strictObject({
      default_ttl: duration.prefault(D.certificates.default_ttl),
      max_ttl: duration.prefault(D.certificates.max_ttl),
      allowed_key_types: z
        .array(keyType)
        .min(1)
        .default([...KEY_TYPES]),
      backdate: duration
        .refine((ms) => ms <= 5 * 60_000, 'must be at most 5m')
        .prefault(D.certificates.backdate),
      organization: z.string().min(1).max(64).optional(),
      max_dns_names: z.number().int().min(1).max(1000).default(D.certificates.max_dns_names),
    })
    .prefault({}),
  crl: z
    .strictObject({
      validity: duration.prefault(D.crl.validity),
      root_validity: duration.prefault(D.crl.root_validity),
    })
    .prefault({}),
  ocsp: z
    .strictObject({
      validity: duration.prefault(D.ocsp.validity),
      signer_ttl: duration
        .refine((ms) => ms <= 30 * 86_400_000, 'must be at most 30d')
        .prefault(D.ocsp.signer_ttl),
      nonce_rate: z.number().int().min(0).max(100_000).default(D.ocsp.nonce_rate),
    })
    .prefault({}),
  enrollment: z
    .strictObject({
      join_token_ttl: duration.prefault(D.enrollment.join_token_ttl),
      max_join_token_ttl: duration.prefault(D.enrollment.max_join_token_ttl),
    })
    .prefault({}),
  renewal: z
    .strictObject({
      clone_grace: duration.prefault(D.renewal.clone_grace),
      require_new_key: z.boolean().default(D.renewal.require_new_key),
      max_lineage: z.union([z.literal('off'), duration]).prefault(D.renewal.max_lineage),
    })
    .prefault({}),
  admin: z
    .strictObject({
      spiffe_ids: z.array(z.string()).min(1).optional(),
      credential_ttl: duration.prefault(D.admin.credential_ttl),
    })
    .prefault({}),
  tokens: z
    .strictObject({
      issuer: z.url({ protocol: /^https$/ }).optional(),
      audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
      access_token_ttl: duration.prefault(D.tokens.access_token_ttl),
      refresh_token_ttl: duration.prefault(D.tokens.refresh_token_ttl),
      signing_key_type: keyType.default(D.tokens.signing_key_type),
      signing_key_rotation: z
        .union([z.literal('off'), duration])
        .prefault(D.tokens.signing_key_rotation),
      jwks_cache_ttl: duration.prefault(D.tokens.jwks_cache_ttl),
      introspection_clients: z.array(z.string()).optional(),
    })
    .prefault({}),
  federation: z
    .strictObject({
      oidc_issuers: z.array(oidcIssuer).max(64).default([]),
      max_token_age: duration
        .refine((ms) => ms <= 86_400_000, 'must be at most 24h')
        .prefault(D.federation.max_token_age),
      fetch_timeout: duration
        .refine((ms) => ms <= 60_000, 'must be at most 60s')
        .prefault(D.federation.fetch_timeout),
    })
    .prefault({}),
  limits: z
    .strictObject({
      failed_auth: count(D.limits.failed_auth),
      window: duration.refine((ms) => ms >= 1000, 'must be at least 1s').prefault(D.limits.window),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      // Unset: no metrics listener.
      listen: hostPort.optional(),
    })
    .prefault({}),
  audit: z
    .strictObject({
      checkpoint_interval: duration
        .refine((ms) => ms >= 1000 && ms <= 3_600_000, 'must be from 1s to 1h')
        .prefault(D.audit.checkpoint_interval),
      retention: z
        .union([z.literal('forever'), duration.refine((ms) => ms >= 86_400_000, 'at least 1d')])
        .prefault(D.audit.retention),
    })
    .prefault({}),
})

export type RawConfig = z.output<typeof configSchema>
