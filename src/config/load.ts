import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { dirname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import type { z } from 'zod'
import type { KeyType } from '../crypto/keys.js'
import { parsePostgresUrl } from '../db/postgres/url.js'
import { CAError } from '../errors.js'
import { spiffeIdProblem } from '../identity/spiffe-id.js'
import { pemBlocks } from '../x509/pem.js'
import { configSchema, type RawConfig } from './schema.js'

/** An OIDC issuer whose identity tokens may enrol workloads (CONTRACT "Enrolment by an OIDC identity token"). */
export interface OidcIssuerConfig {
  /** What entries name it by (`oidc.issuer`). */
  readonly name: string
  /** The exact `iss` of its tokens, and the base of its discovery document. */
  readonly issuer: string
  /** The `aud` its tokens must carry for this CA. */
  readonly audience: string
  /** When set, the JWKS is fetched from here and discovery is skipped. */
  readonly jwksUri: string | undefined
  /** PEM trust anchors for its HTTPS endpoints (a private issuer); undefined: the system's. */
  readonly caBundlePem: string | undefined
}

/** The validated configuration: durations in milliseconds, paths absolute, derived defaults filled. */
export interface Config {
  readonly configPath: string | undefined
  readonly trustDomain: string
  readonly dataDir: string
  readonly logLevel: string
  readonly server: {
    readonly host: string
    readonly port: number
    readonly hostnames: readonly string[]
    readonly trustedProxies: readonly string[]
    /** When set, a proxy's forwarded certificate counts only if its own has one of these IDs. */
    readonly trustedProxyIds: readonly string[] | undefined
    /** Whether forwarded identities count on admin routes. */
    readonly proxyAdmin: boolean
    readonly forwardedClientCert: 'client-cert' | 'xfcc' | 'escaped-pem'
    readonly maxBodyBytes: number
    readonly tlsCertificateTtlMs: number
    /** Base of the CRL, OCSP and CA-issuer URLs in certificates (no trailing slash). */
    readonly publicUrl: string
    readonly workers: number | 'auto'
    readonly handshakes: {
      readonly maxInFlight: number
      readonly maxInFlightPerAddress: number
      readonly maxQueued: number
      readonly maxQueuedPerAddress: number
      readonly queueTimeoutMs: number
      readonly timeoutMs: number
      readonly maxClientBytes: number
    }
    readonly connections: {
      readonly maxPerAddress: number
      readonly headersTimeoutMs: number
      readonly requestTimeoutMs: number
      readonly keepAliveTimeoutMs: number
    }
  }
  readonly database: {
    /** postgres://… selects PostgreSQL; undefined: SQLite in data_dir. */
    readonly url: string | undefined
    /** Absolute; read when connecting, never kept in the config. */
    readonly passwordFile: string | undefined
    readonly poolSize: number
    readonly startupTimeoutMs: number
    readonly synchronous: 'FULL' | 'NORMAL'
    readonly busyTimeoutMs: number
  }
  readonly ca: {
    readonly keyType: KeyType
    readonly rootTtlMs: number
    readonly intermediateTtlMs: number
    /** Absolute path of the CA keys' passphrase file, if set (else CERTBOUND_CA_KEY_PASSPHRASE). */
    readonly keyPassphraseFile: string | undefined
  }
  readonly certificates: {
    readonly defaultTtlMs: number
    readonly maxTtlMs: number
    readonly allowedKeyTypes: readonly KeyType[]
    readonly backdateMs: number
    readonly organization: string
    readonly maxDnsNames: number
  }
  readonly crl: { readonly validityMs: number; readonly rootValidityMs: number }
  readonly ocsp: {
    readonly validityMs: number
    readonly signerTtlMs: number
    readonly nonceRate: number
  }
  readonly enrollment: { readonly joinTokenTtlMs: number; readonly maxJoinTokenTtlMs: number }
  readonly renewal: {
    readonly cloneGraceMs: number
    readonly requireNewKey: boolean
    /** undefined: off. */
    readonly maxLineageMs: number | undefined
  }
  readonly admin: { readonly spiffeIds: readonly string[]; readonly credentialTtlMs: number }
  readonly tokens: {
    readonly issuer: string
    readonly audience: readonly string[]
    readonly accessTokenTtlMs: number
    readonly refreshTokenTtlMs: number
    readonly signingKeyType: KeyType
    readonly signingKeyRotationMs: number | undefined
    readonly jwksCacheTtlMs: number
    readonly introspectionClients: readonly string[] | undefined
  }
  readonly federation: {
    readonly oidcIssuers: readonly OidcIssuerConfig[]
    readonly maxTokenAgeMs: number
    readonly fetchTimeoutMs: number
  }
  readonly limits: { readonly failedAuth: number; readonly windowMs: number }
  readonly metrics: { readonly host: string; readonly port: number } | undefined
  readonly audit: {
    readonly checkpointIntervalMs: number
    /** How long event rows are kept; undefined: forever. Leaf hashes are kept always. */
    readonly retentionMs: number | undefined
  }
}

/** Reads and validates a config file; fails fast with a message naming the offending key. */
export function loadConfig(path: string | undefined): Config {
  let raw: unknown = {}
  if (path !== undefined) {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (e) {
      throw new CAError('ERR_CONFIG_INVALID', `cannot read config ${path}: ${(e as Error).message}`)
    }
    try {
      raw = parseYaml(text) ?? {}
    } catch (e) {
      throw new CAError('ERR_CONFIG_INVALID', `${path}: invalid YAML: ${(e as Error).message}`)
    }
  }
  return configFromObject(raw, path)
}

/** Validates an already-parsed config object (tests build configs this way). */
export function configFromObject(raw: unknown, path?: string): Config {
  const parsed = configSchema.safeParse(raw)
  if (!parsed.success) throw new CAError('ERR_CONFIG_INVALID', describeIssues(parsed.error, path))
  const c = parsed.data
  const baseDir = path === undefined ? process.cwd() : dirname(resolve(path))
  const [host, port] = splitHostPort(c.server.listen, path)
  const adminIds = c.admin.spiffe_ids ?? [`spiffe://${c.trust_domain}/admin`]
  for (const [i, id] of adminIds.entries()) {
    const problem = spiffeIdProblem(id, c.trust_domain)
    if (problem) fail(path, `admin.spiffe_ids.${i}`, `"${id}" is not a valid SPIFFE ID: ${problem}`)
  }
  for (const [i, id] of (c.server.trusted_proxy_ids ?? []).entries()) {
    const problem = spiffeIdProblem(id, c.trust_domain)
    if (problem) fail(path, `server.trusted_proxy_ids.${i}`, `"${id}": ${problem}`)
  }
  for (const [i, id] of (c.tokens.introspection_clients ?? []).entries()) {
    const problem = spiffeIdProblem(id, c.trust_domain)
    if (problem) fail(path, `tokens.introspection_clients.${i}`, `"${id}": ${problem}`)
  }
  if (c.certificates.default_ttl > c.certificates.max_ttl) {
    fail(path, 'certificates.default_ttl', 'must not exceed certificates.max_ttl')
  }
  const db = c.database
  if (db.password_file !== undefined && db.url === undefined) {
    fail(path, 'database.password_file', 'needs database.url (SQLite has no password)')
  }
  if (db.password_file !== undefined && db.url && parsePostgresUrl(db.url).password) {
    fail(path, 'database.password_file', 'database.url has a password already: keep one of them')
  }
  const first = c.server.hostnames[0]!
  const issuerHost = isIP(first) === 6 ? `[${first}]` : first
  const issuer = (c.tokens.issuer ?? `https://${issuerHost}:${port}`).replace(/\/+$/, '')
  const audience = c.tokens.audience ?? issuer
  return {
    configPath: path === undefined ? undefined : resolve(path),
    trustDomain: c.trust_domain,
    dataDir: resolve(baseDir, c.data_dir),
    logLevel: c.log_level,
    server: {
      host,
      port,
      hostnames: c.server.hostnames,
      trustedProxies: c.server.trusted_proxies,
      trustedProxyIds: c.server.trusted_proxy_ids,
      proxyAdmin: c.server.proxy_admin,
      forwardedClientCert: c.server.forwarded_client_cert,
      maxBodyBytes: c.server.max_body_bytes,
      tlsCertificateTtlMs: c.server.tls_certificate_ttl,
      publicUrl: (c.server.public_url ?? issuer).replace(/\/+$/, ''),
      workers: c.server.workers,
      handshakes: {
        maxInFlight: c.server.handshakes.max_in_flight,
        maxInFlightPerAddress: c.server.handshakes.max_in_flight_per_address,
        maxQueued: c.server.handshakes.max_queued,
        maxQueuedPerAddress: c.server.handshakes.max_queued_per_address,
        queueTimeoutMs: c.server.handshakes.queue_timeout,
        timeoutMs: c.server.handshakes.timeout,
        maxClientBytes: c.server.handshakes.max_client_bytes,
      },
      connections: {
        maxPerAddress: c.server.connections.max_per_address,
        headersTimeoutMs: c.server.connections.headers_timeout,
        requestTimeoutMs: c.server.connections.request_timeout,
        keepAliveTimeoutMs: c.server.connections.keep_alive_timeout,
      },
    },
    database: {
      url: db.url,
      passwordFile: db.password_file === undefined ? undefined : resolve(baseDir, db.password_file),
      poolSize: db.pool_size,
      startupTimeoutMs: db.startup_timeout,
      synchronous: db.synchronous,
      busyTimeoutMs: db.busy_timeout,
    },
    ca: {
      keyType: c.ca.key_type,
      rootTtlMs: c.ca.root_ttl,
      intermediateTtlMs: c.ca.intermediate_ttl,
      keyPassphraseFile:
        c.ca.key_passphrase_file === undefined
          ? undefined
          : resolve(baseDir, c.ca.key_passphrase_file),
    },
    certificates: {
      defaultTtlMs: c.certificates.default_ttl,
      maxTtlMs: c.certificates.max_ttl,
      allowedKeyTypes: c.certificates.allowed_key_types,
      backdateMs: c.certificates.backdate,
      organization: c.certificates.organization ?? c.trust_domain,
      maxDnsNames: c.certificates.max_dns_names,
    },
    crl: { validityMs: c.crl.validity, rootValidityMs: c.crl.root_validity },
    ocsp: {
      validityMs: c.ocsp.validity,
      signerTtlMs: c.ocsp.signer_ttl,
      nonceRate: c.ocsp.nonce_rate,
    },
    enrollment: {
      joinTokenTtlMs: c.enrollment.join_token_ttl,
      maxJoinTokenTtlMs: c.enrollment.max_join_token_ttl,
    },
    renewal: {
      cloneGraceMs: c.renewal.clone_grace,
      requireNewKey: c.renewal.require_new_key,
      maxLineageMs: c.renewal.max_lineage === 'off' ? undefined : c.renewal.max_lineage,
    },
    admin: { spiffeIds: adminIds, credentialTtlMs: c.admin.credential_ttl },
    tokens: {
      issuer,
      audience: Array.isArray(audience) ? audience : [audience],
      accessTokenTtlMs: c.tokens.access_token_ttl,
      refreshTokenTtlMs: c.tokens.refresh_token_ttl,
      signingKeyType: c.tokens.signing_key_type,
      signingKeyRotationMs:
        c.tokens.signing_key_rotation === 'off' ? undefined : c.tokens.signing_key_rotation,
      jwksCacheTtlMs: c.tokens.jwks_cache_ttl,
      introspectionClients: c.tokens.introspection_clients,
    },
    federation: {
      oidcIssuers: oidcIssuers(c.federation.oidc_issuers, baseDir, path),
      maxTokenAgeMs: c.federation.max_token_age,
      fetchTimeoutMs: c.federation.fetch_timeout,
    },
    limits: { failedAuth: c.limits.failed_auth, windowMs: c.limits.window },
    metrics: metricsListen(c.metrics.listen, path),
    audit: {
      checkpointIntervalMs: c.audit.checkpoint_interval,
      retentionMs: c.audit.retention === 'forever' ? undefined : c.audit.retention,
    },
  }
}

/** `federation.oidc_issuers`: unique names; a `ca_bundle` file is read now and must hold PEM. */
function oidcIssuers(
  raw: RawConfig['federation']['oidc_issuers'],
  baseDir: string,
  path: string | undefined,
): OidcIssuerConfig[] {
  const seen = new Set<string>()
  return raw.map((i, n) => {
    const key = `federation.oidc_issuers.${n}`
    if (seen.has(i.name)) fail(path, `${key}.name`, `"${i.name}" is configured twice`)
    seen.add(i.name)
    let caBundlePem: string | undefined
    if (i.ca_bundle !== undefined) {
      const file = resolve(baseDir, i.ca_bundle)
      try {
        caBundlePem = readFileSync(file, 'utf8')
      } catch (e) {
        fail(path, `${key}.ca_bundle`, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code}`)
      }
      let count = 0
      try {
        count = pemBlocks(caBundlePem, 'CERTIFICATE').length
      } catch {
        count = 0
      }
      if (count === 0) fail(path, `${key}.ca_bundle`, `${file} holds no PEM certificate`)
    }
    return {
      name: i.name,
      issuer: i.issuer,
      audience: i.audience,
      jwksUri: i.jwks_uri,
      caBundlePem,
    }
  })
}

function metricsListen(listen: string | undefined, path: string | undefined) {
  if (listen === undefined) return undefined
  const [host, port] = splitHostPort(listen, path, 'metrics.listen')
  return { host, port }
}

function splitHostPort(
  listen: string,
  path: string | undefined,
  key = 'server.listen',
): [string, number] {
  const i = listen.lastIndexOf(':')
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1')
  const port = Number(listen.slice(i + 1))
  if (port > 65535) fail(path, key, `port ${port} is out of range`)
  return [host, port]
}

function describeIssues(error: z.ZodError, path: string | undefined): string {
  const lines = error.issues.map((issue) => {
    const key = issue.path.join('.') || '(top level)'
    if (issue.code === 'unrecognized_keys') {
      const prefix = issue.path.length ? `${issue.path.join('.')}.` : ''
      return `unknown key ${issue.keys.map((k) => `"${prefix}${k}"`).join(', ')}`
    }
    return `${key}: ${issue.message}`
  })
  return `${path ?? 'config'}: ${lines.join('; ')}`
}

function fail(path: string | undefined, key: string, message: string): never {
  throw new CAError('ERR_CONFIG_INVALID', `${path ?? 'config'}: ${key}: ${message}`)
}
