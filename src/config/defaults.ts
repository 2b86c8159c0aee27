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
  },
  database: { busy_timeout: '5s' },
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
    jwks_cache_ttl: '5m',
  },
} as const
