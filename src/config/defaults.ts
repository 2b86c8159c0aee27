/**
 * Built-in defaults: every key of ca-config.yaml has one, so a config file states only
 * what differs. Durations are in the config's own string form.
 */
export const DEFAULTS = {
  trust_domain: 'example.org',
  data_dir: './data',
  log_level: 'info',
  server: {
    listen: '127.0.0.1:8443',
    hostnames: ['localhost', '127.0.0.1'],
    max_body_bytes: 64 * 1024,
    // The server renews its own TLS certificate when a third of this is left.
    tls_certificate_ttl: '30d',
    // The one header a trusted proxy forwards the client certificate in: RFC 9440 by default.
    forwarded_client_cert: 'client-cert',
    // Server processes on the one listening socket (node:cluster); 'auto' = one per core.
    workers: 1 as number | 'auto',
    // Whether identities a trusted proxy forwards count on admin routes.
    proxy_admin: false,
    // The TLS handshake guard (packages/verifier/src/mtls/handshake-guard.ts): high enough that 50 parallel
    // enrolments or a 16-client benchmark from one address never wait.
    handshakes: {
      max_in_flight: 256,
      max_in_flight_per_address: 64,
      max_queued: 1024,
      max_queued_per_address: 256,
      queue_timeout: '10s',
      timeout: '10s',
      // A certbound client sends 2-6 KB before its handshake completes.
      max_client_bytes: 16_384,
    },
    connections: {
      max_per_address: 512,
      headers_timeout: '10s',
      // Node's default of 300 s let a slow body hold a request for five minutes.
      request_timeout: '30s',
      keep_alive_timeout: '5s',
    },
  },
  // pool_size and startup_timeout apply to PostgreSQL (database.url) only.
  database: { busy_timeout: '5s', pool_size: 10, startup_timeout: '60s' },
  ca: { key_type: 'ec-p256', root_ttl: '3650d', intermediate_ttl: '1825d' },
  certificates: { default_ttl: '1h', max_ttl: '24h', backdate: '1m', max_dns_names: 32 },
  // nextUpdate - thisUpdate; the CRL is rebuilt when half of it has passed.
  // The roots' CRL (listing issuing CAs) changes rarely; an offline root's is imported.
  crl: { validity: '24h', root_validity: '7d' },
  // nextUpdate - thisUpdate of OCSP answers (re-signed at half); the delegated responder's
  // lifetime (renewed at a third left); nonce requests signed per second and process.
  ocsp: { validity: '1h', signer_ttl: '7d', nonce_rate: 100 },
  enrollment: { join_token_ttl: '1h', max_join_token_ttl: '30d' },
  // A retired generation asking for a token within clone_grace is a process still holding the
  // previous files, not a clone (CONTRACT "Lineages").
  renewal: { clone_grace: '60s', require_new_key: true, max_lineage: 'off' },
  admin: { credential_ttl: '30d' },
  tokens: {
    access_token_ttl: '5m',
    refresh_token_ttl: '24h',
    signing_key_type: 'ec-p256',
    signing_key_rotation: '30d',
    // Verifiers refetch the JWKS this often: an emergency rotation reaches them within it.
    jwks_cache_ttl: '1m',
  },
  federation: {
    // OIDC identity tokens older than this (by `iat`) are refused, whatever their `exp`.
    max_token_age: '10m',
    // Discovery and JWKS requests to an issuer give up after this: a failing issuer never
    // holds a request longer.
    fetch_timeout: '5s',
  },
  // Failed authentications per peer address per window; beyond, that address gets 429.
  limits: { failed_auth: 30, window: '1m' },
  // The audit log (src/audit): a signed checkpoint at most this often; event rows kept forever.
  audit: { checkpoint_interval: '5s', retention: 'forever' },
} as const
