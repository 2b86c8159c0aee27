/**
 * The token-endpoint peer: node-oidc-provider configured as an RFC 8705 authorization server,
 * run by the bench in its own process (`node --import tsx bench/peers/oidc-provider-server.ts
 * <config.json>`). Its clients are the bench's certbound workloads: `tls_client_auth` with
 * `tls_client_auth_san_uri` = their SPIFFE ID, certificate-bound (x5t#S256) ES256 JWT access
 * tokens for one resource server (resource indicators), its in-memory adapter.
 */
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import Provider from 'oidc-provider'

interface PeerConfig {
  readonly port: number
  /** This server's TLS certificate and key (PEM). */
  readonly cert: string
  readonly key: string
  /** Trust anchors for client certificates (certbound's root). */
  readonly ca: string
  /** SPIFFE IDs of the clients, each registered as a tls_client_auth client of that id. */
  readonly clients: readonly string[]
}

const RESOURCE = 'https://rs.bench.example'
const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as PeerConfig
const issuer = `https://127.0.0.1:${config.port}`

const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
  format: 'jwk',
})

// The peer certificate of a keep-alive connection cannot change (no renegotiation with TLS 1.3,
// refused with 1.2 by node): parse it once per socket, as a careful deployment would.
const peerCerts = new WeakMap<TLSSocket, X509Certificate | undefined>()
function peerCertificate(socket: TLSSocket): X509Certificate | undefined {
  if (!peerCerts.has(socket)) peerCerts.set(socket, socket.getPeerX509Certificate())
  return peerCerts.get(socket)
}

type Ctx = { socket: TLSSocket }

const provider = new Provider(issuer, {
  clients: config.clients.map((id) => ({
    client_id: id,
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_san_uri: id,
    tls_client_certificate_bound_access_tokens: true, // RFC 8705 §3.4
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    // Its only key is ES256 (the default RS256 would need an RSA key it never uses here).
    id_token_signed_response_alg: 'ES256',
  })),
  jwks: { keys: [{ ...signingKey, alg: 'ES256', use: 'sig', kid: 'bench' } as never] },
  clientAuthMethods: ['tls_client_auth'],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      tlsClientAuth: true,
      getCertificate: (ctx: Ctx) => peerCertificate(ctx.socket),
      certificateAuthorized: (ctx: Ctx) => ctx.socket.authorized,
      certificateSubjectMatches: (ctx: Ctx, property: string, expected: string) => {
        if (property !== 'tls_client_auth_san_uri') return false
        const san = peerCertificate(ctx.socket)?.subjectAltName ?? ''
        return san.split(', ').includes(`URI:${expected}`)
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: RESOURCE,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  } as never,
})
provider.on('server_error', (_ctx: unknown, err: Error) => console.error('server_error', err))

createServer(
  {
    cert: config.cert,
    key: config.key,
    ca: config.ca,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  },
  provider.callback(),
).listen(config.port, '127.0.0.1', () => console.log('ready'))

process.on('SIGTERM', () => process.exit(0))
