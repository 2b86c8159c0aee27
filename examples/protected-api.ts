/**
 * A resource server that accepts a certbound access token only together with the client
 * certificate it is bound to (RFC 8705): Hono + `certboundAuth` on `@hono/node-server` over
 * HTTPS, asking for client certificates.
 *
 * Its own TLS certificate comes from its own `certbound agent --out` directory (the entry must
 * allow the DNS name clients use, here `localhost`), and is swapped in without a restart when
 * the agent rotates it. From the repository root, with the CA running (`npm start`):
 *
 *   npm run -s certbound -- agent --server https://localhost:8443 --ca-bundle data/ca/bundle.pem \
 *     --spiffe-id spiffe://example.org/api --dns localhost --out walk/api \
 *     --join-token-file walk/api.join &
 *   npx tsx examples/protected-api.ts
 *
 * Environment (defaults in brackets):
 *   CERTBOUND_DIR       [walk/api]                 the API's agent output directory
 *   CERTBOUND_SERVER    [https://localhost:8443]   the CA: JWKS and introspection
 *   CERTBOUND_ISSUER    [$CERTBOUND_SERVER]        expected `iss` (the CA's tokens.issuer)
 *   CERTBOUND_AUDIENCE  [$CERTBOUND_ISSUER]        expected `aud` (the CA's tokens.audience)
 *   CERTBOUND_ONLINE    [unset]                    1: also introspect each token (catches a
 *                                                  revoked certificate before the token's exp)
 *   HOST [127.0.0.1]  PORT [8444]
 */
import { createServer } from 'node:https'
import type { Server } from 'node:https'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createBoundFetch } from '@certbound/client'
import { createVerifier, guardHandshakes } from '@certbound/verifier'
import { certboundAuth } from '@certbound/verifier/hono'

const env = (name: string, fallback: string) => process.env[name] || fallback

const dir = env('CERTBOUND_DIR', 'walk/api')
const ca = env('CERTBOUND_SERVER', 'https://localhost:8443').replace(/\/+$/, '')
const issuer = env('CERTBOUND_ISSUER', ca)
const audience = env('CERTBOUND_AUDIENCE', issuer)
const online = process.env.CERTBOUND_ONLINE === '1'

let https: Server | undefined
// The API's own certificate, key and trust bundle, always one consistent generation. On a
// rotation the TLS server takes the new certificate for new connections.
const own = await createBoundFetch({
  dir,
  onReload: (g) => {
    https?.setSecureContext({ cert: g.chainPem, key: g.keyPem, ca: g.caPem })
    console.log(`protected API: reloaded, certificate ${g.certificate.serialNumber}`)
  },
})
const first = own.current()

const verifier = createVerifier({
  issuer,
  audience,
  trustAnchors: first.caPem,
  // chain.pem is leaf + intermediate: the intermediate validates clients that send only a leaf.
  intermediates: first.chainPem
    .split(/(?=-----BEGIN CERTIFICATE-----)/)
    .slice(1)
    .join(''),
  jwksUri: `${ca}/.well-known/jwks.json`,
  ...(online && {
    // Introspection over mTLS with the API's own (current) certificate.
    introspection: {
      endpoint: `${ca}/oauth/introspect`,
      credentials: () => ({ cert: own.current().chainPem, key: own.current().keyPem }),
    },
  }),
})

const app = new Hono()
app.get('/healthz', (c) => c.json({ status: 'ok' }))
// 401 + `WWW-Authenticate: Bearer error="invalid_token"` unless the token verifies AND is bound
// to the certificate presented on this TLS connection.
app.use('/api/*', certboundAuth({ verifier, realm: 'example-api' }))
app.get('/api/hello', (c) => {
  const { claims, thumbprint, certificateSource } = c.get('certbound')
  return c.json({ hello: claims.sub, 'x5t#S256': thumbprint, certificate: certificateSource })
})

https = serve(
  {
    fetch: app.fetch,
    hostname: env('HOST', '127.0.0.1'),
    port: Number(env('PORT', '8444')),
    createServer,
    serverOptions: {
      cert: first.chainPem,
      key: first.keyPem,
      ca: first.caPem,
      requestCert: true, // ask for the client certificate...
      rejectUnauthorized: false, // ...and let certboundAuth refuse, with a proper 401
    },
  },
  (info) => console.log(`protected API listening on https://localhost:${info.port}/api/hello`),
) as Server
// Asking for client certificates lets a hostile client make each handshake expensive: the
// guard caps what a client may send before its handshake completes and queues the excess.
guardHandshakes(https)

const stop = () => {
  https?.close()
  https?.closeAllConnections()
  void Promise.all([own.close(), verifier.close()]).then(() => process.exit(0))
}
process.once('SIGTERM', stop)
process.once('SIGINT', stop)
