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
  crl: { validity: '24h' },
  enrollment: { join_token_ttl: '1h', max_join_token_ttl: '30d' },
  admin: { credential_ttl: '30d' },
  tokens: {
    access_token_ttl: '5m',
    refresh_token_ttl: '24h',
    signing_key_type: 'ec-p256',
    signing_key_rotation: '30d',
    // Verifiers refetch the JWKS this often: an emergency rotation reaches them within it.
    jwks_cache_ttl: '1m',
  },
  // The audit log (src/audit): a signed checkpoint at most this often; event rows kept forever.
  audit: { checkpoint_interval: '5s', retention: 'forever' },
} as const
