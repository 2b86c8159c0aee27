/**
 * What each key of ca-config.yaml means, for docs/configuration.md. The generator
 * (`npm run docs:config`, scripts/config-reference.ts) takes the keys, the kind of value and the
 * built-in defaults from the schema and the words from here; a test fails when a schema key has
 * no entry, an entry names no key, or the generated page differs from the file. Adding a key:
 * add one line here, run `npm run docs:config`.
 *
 * `default` is needed only where the schema has no fixed default (one derived from other keys).
 * Text is Markdown; `|` is escaped by the generator.
 */
export interface KeyReference {
  readonly description: string
  /** The default in words, where the schema's own default is missing or derived. */
  readonly default?: string
}

/** Keys are dotted paths (`server.listen`); a section (`server`) may carry an introduction. */
export const CONFIG_REFERENCE: Readonly<Record<string, KeyReference>> = {
  trust_domain: {
    description: 'SPIFFE trust domain; every SPIFFE ID is `spiffe://<trust_domain>/path`',
  },
  data_dir: { description: 'database, CA and keys (private keys mode 0600)' },
  log_level: { description: 'pino level; logs go to stderr and never contain keys or tokens' },

  server: { description: "The HTTPS listener and the server's own TLS certificate." },
  'server.listen': { description: 'where the HTTPS server listens' },
  'server.hostnames': {
    description: "SANs of the server's TLS certificate",
    default: '`[localhost, 127.0.0.1]`',
  },
  'server.trusted_proxies': {
    description:
      'TLS-terminating proxies in front of the CA whose forwarded client certificate the CA ' +
      "takes as the client's (see [Behind a proxy](../README.md#configuration))",
  },
  'server.forwarded_client_cert': {
    description:
      'the one header such a proxy forwards the certificate in: `client-cert` (RFC 9440 ' +
      "`Client-Cert`), `xfcc` (Envoy), `escaped-pem` (`X-SSL-Client-Cert`, nginx's " +
      '`$ssl_client_escaped_cert`)',
  },
  'server.trusted_proxy_ids': {
    description:
      "when set, a trusted proxy's forwarded certificate counts only if the proxy's own TLS " +
      'certificate (one of this CA) has one of these SPIFFE IDs',
    default: 'unset (source address alone)',
  },
  'server.proxy_admin': {
    description: 'whether identities a trusted proxy forwards count on admin routes',
  },
  'server.handshakes.max_in_flight': {
    description: 'TLS handshakes processed at once; more wait in a queue, never reset',
  },
  'server.handshakes.max_in_flight_per_address': {
    description: 'TLS handshakes processed at once from one address',
  },
  'server.handshakes.max_queued': {
    description: 'connections waiting for a handshake slot; beyond, new ones are closed',
  },
  'server.handshakes.max_queued_per_address': {
    description: 'connections from one address waiting for a handshake slot',
  },
  'server.handshakes.queue_timeout': {
    description: 'how long a connection may wait for a handshake slot',
  },
  'server.handshakes.timeout': { description: 'a TLS handshake must complete within this' },
  'server.handshakes.max_client_bytes': {
    description:
      'bytes a client may send before its handshake completes (a long junk certificate chain ' +
      'never reaches OpenSSL whole; a certbound client sends 2–6 KB)',
  },
  'server.connections.max_per_address': {
    description: 'open connections from one address; more wait',
  },
  'server.connections.headers_timeout': {
    description: 'a request must send its headers within this',
  },
  'server.connections.request_timeout': {
    description: 'a request, body included, must arrive within this',
  },
  'server.connections.keep_alive_timeout': {
    description: 'an idle keep-alive connection is closed after this',
  },
  'server.max_body_bytes': { description: 'larger request bodies are refused (413)' },
  'server.tls_certificate_ttl': {
    description: 'the server renews its own certificate with a third left, without a restart',
  },
  'server.workers': {
    description:
      'server processes on the one listening socket (node:cluster), or `auto` for one per core; they share the database and answer alike',
  },

  database: {
    description:
      'The embedded SQLite database `data_dir/certbound.db`, or PostgreSQL (`database.url`), ' +
      'which several replicas can share.',
  },
  'database.url': {
    description:
      '`postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…]` selects PostgreSQL; TLS as ' +
      "libpq's `sslmode` says: `disable`, `require`, `verify-ca`, `verify-full` (with " +
      '`sslrootcert=FILE`; `sslcert`/`sslkey` for a client certificate). `prefer`/`allow` are refused',
    default: 'none (SQLite)',
  },
  'database.password_file': {
    description:
      'PostgreSQL password read from this file (one line) when the URL has none; else `PGPASSWORD`',
    default: 'none',
  },
  'database.pool_size': { description: 'PostgreSQL connections each process keeps at most' },
  'database.startup_timeout': {
    description:
      'how long a starting server waits for PostgreSQL to accept connections, logging ' +
      '"waiting for the database"',
  },
  'database.synchronous': {
    description: 'SQLite `synchronous`; `FULL` makes an acknowledged issuance survive a power loss',
  },
  'database.busy_timeout': {
    description:
      'how long a write waits for a lock (SQLite busy timeout; PostgreSQL `lock_timeout` and the ' +
      'wait for a free pooled connection) before the request is answered 503',
  },

  ca: { description: 'The root and issuing CA that `init` creates.' },
  'ca.key_type': { description: 'key type of the root and the intermediate' },
  'ca.root_ttl': { description: 'lifetime of the root certificate' },
  'ca.intermediate_ttl': { description: 'lifetime of the issuing (intermediate) certificate' },
  'ca.key_passphrase_file': {
    description:
      'a file holding the passphrase of the CA key files (encrypted PKCS#8); else the ' +
      'environment variable `CERTBOUND_CA_KEY_PASSPHRASE`; neither: the keys are stored unencrypted',
    default: 'unset',
  },

  certificates: { description: 'Workload certificates.' },
  'certificates.default_ttl': {
    description: 'lifetime when a request names none (capped by the entry)',
  },
  'certificates.max_ttl': {
    description: 'a request over `min(entry ttl, max_ttl)` is refused, not clamped',
  },
  'certificates.allowed_key_types': { description: 'key types accepted in CSRs' },
  'certificates.max_dns_names': {
    description:
      'DNS SANs a certificate may carry, after case-insensitive de-duplication; more is a 400',
  },
  'certificates.backdate': {
    description: '`notBefore` = issue time − backdate (at most `5m`)',
  },
  'certificates.organization': {
    description: 'the `O=` of every subject the CA builds',
    default: 'the trust domain',
  },

  'crl.validity': {
    description:
      "`nextUpdate` − `thisUpdate` of the issuing CAs' CRLs; rebuilt at half of it and after every revocation; an expired certificate stays listed this long after its `notAfter`",
  },
  'crl.root_validity': {
    description:
      "the same for the root's CRL (it lists issuing CAs); an offline root's CRL is imported with `ca import-crl`",
  },

  ocsp: { description: 'The OCSP responder (RFC 6960) at `/v1/ocsp`.' },
  'ocsp.validity': {
    description:
      '`nextUpdate` − `thisUpdate` of OCSP answers; stored answers are signed again at half of it',
  },
  'ocsp.signer_ttl': {
    description:
      'lifetime of the delegated responder certificate (`id-kp-OCSPSigning`, `ocsp-nocheck`; at most `30d`), renewed at a third left',
  },
  'ocsp.nonce_rate': {
    description:
      'requests with a nonce signed per second and process; beyond it they get the stored answer without a nonce',
  },

  'enrollment.join_token_ttl': { description: 'default join-token lifetime' },
  'enrollment.max_join_token_ttl': { description: 'longest join token an admin may ask for' },

  'admin.spiffe_ids': {
    description: 'admin identities; `init` issues a credential for the first',
    default: '`[spiffe://<trust_domain>/admin]`',
  },
  'admin.credential_ttl': {
    description:
      'lifetime of admin credentials (`certbound admin-credential` re-issues one locally)',
  },

  tokens: { description: 'Access and refresh tokens (RFC 8705, RFC 9068).' },
  'server.public_url': {
    description:
      'base URL of the CRL distribution point, OCSP and CA-issuers URLs certificates carry (`http://` or `https://`)',
    default: 'the issuer (`tokens.issuer`)',
  },
  'tokens.issuer': {
    description: '`iss` of access tokens and the base URL of discovery',
    default: '`https://<first hostname>:<port>`',
  },
  'tokens.audience': { description: '`aud` of access tokens', default: 'the issuer' },
  'tokens.access_token_ttl': {
    description: "access-token lifetime (never past the certificate's `notAfter`)",
  },
  'tokens.refresh_token_ttl': {
    description: "refresh-token lifetime (never past the bound certificate's `notAfter`)",
  },
  'tokens.signing_key_type': {
    description: '`ec-p256` signs ES256, `ec-p384` ES384, `ed25519` EdDSA, `rsa-*` RS256',
  },
  'tokens.signing_key_rotation': { description: 'automatic rotation by age, or `off`' },
  'tokens.jwks_cache_ttl': {
    description: 'JWKS `Cache-Control: max-age`; also the pre-publication margin of a new key',
  },
  'tokens.introspection_clients': {
    description: 'if set, only these SPIFFE IDs may call `/oauth/introspect`',
    default: 'unset: any valid certificate of this CA',
  },

  renewal: {
    description:
      'Lineages and cloned credentials (see [Cloned credentials](../README.md#cloned-credentials)).',
  },
  'renewal.clone_grace': {
    description:
      'how long after its retirement a generation may still ask for a token without raising the ' +
      'clone alarm (refused, nothing revoked: a process still holding the previous files)',
  },
  'renewal.require_new_key': {
    description: "refuse a renewal whose CSR re-uses the presented certificate's key",
  },
  'renewal.max_lineage': {
    description:
      'refuse renewal of a lineage older than this (re-enrol with a join token or an OIDC token), or `off`',
  },
  federation: {
    description:
      'Enrolment by OIDC identity tokens (GitHub Actions, GitLab CI, Kubernetes service ' +
      'accounts, any issuer with discovery and a JWKS), for entries that carry an `oidc` rule; ' +
      'see [CI without secrets](ci-without-secrets.md).',
  },
  'federation.oidc_issuers': {
    description:
      'issuers whose tokens may enrol: `name` (what entries name it by), `issuer` (the exact ' +
      '`iss`; discovery at `<issuer>/.well-known/openid-configuration` must name the same ' +
      'issuer), `audience` (the `aud` tokens must carry for this CA), `jwks_uri` (skips ' +
      'discovery), `ca_bundle` (PEM trust anchors of a private issuer; default: the system ' +
      'store). Only asymmetric keys; a JWKS holding a symmetric key is refused',
  },
  'federation.max_token_age': {
    description:
      'a token whose `iat` is older than this is refused, whatever its `exp` (a Kubernetes ' +
      'projected token is replaced at 80% of `expirationSeconds`)',
  },
  'federation.fetch_timeout': {
    description:
      'discovery and JWKS requests give up after this (the enrolment answers 503); a JWKS is ' +
      'refetched on an unknown `kid` at most every 30 s',
  },
  limits: {
    description:
      'Failed authentications (bad join tokens, OIDC tokens and renewal proofs; missing, ' +
      'untrusted, unknown or revoked client certificates) counted per peer address in the database, so across workers and replicas.',
  },
  'limits.failed_auth': {
    description:
      'failed authentications a peer address may make per window; beyond, its further ' +
      'unauthenticated attempts answer 429 with `Retry-After`. Requests with a valid client ' +
      'certificate are never throttled',
  },
  'limits.window': { description: 'the window (from the first failure) they are counted over' },
  metrics: { description: 'Prometheus metrics.' },
  'metrics.listen': {
    description:
      'where plain-HTTP `GET /metrics` is served (Prometheus text, names prefixed `certbound_`); ' +
      'with `server.workers` > 1 the primary serves the sum over its workers',
    default: 'unset: no metrics listener',
  },
  audit: {
    description:
      'The audit log: every audit event a leaf of a signed Merkle tree (see ' +
      '[Audit log](../README.md#audit-log)).',
  },
  'audit.checkpoint_interval': {
    description:
      'how often committed events are appended to the tree and a checkpoint signed (one per ' +
      'interval with new events, ~330 bytes each)',
  },
  'audit.retention': {
    description:
      'how long event rows (and checkpoints) are kept: `forever`, or at least `1d`; older ' +
      'ones are purged hourly, their leaf hashes (32 bytes each) stay, so the tree still verifies',
  },
}
