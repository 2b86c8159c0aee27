import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import Provider from 'oidc-provider'
import { Agent, request } from 'undici'
import { loopbackTls, type LoopbackTls } from './tls.js'

/**
 * node-oidc-provider — an OpenID Provider no one here wrote — on loopback HTTPS, as the issuer
 * of signed JWTs with its own discovery and JWKS: `client_credentials` with JWT access tokens
 * (RS256, `kid` from its keystore) for one resource, certbound's audience. `extraTokenClaims`
 * adds a `repository` claim per client, so entries can pin it. `rotate()` replaces its signing
 * key (a new provider instance behind the same URL, as a restarted provider with a new key).
 */
export class OidcProviderIssuer {
  url = ''
  readonly tls: LoopbackTls
  readonly #server: Server
  #handler: ReturnType<InstanceType<typeof Provider>['callback']> | undefined
  readonly #secret = randomBytes(16).toString('base64url')
  kid = ''

  private constructor(
    readonly audience: string,
    readonly clients: Record<string, { repository: string }>,
  ) {
    this.tls = loopbackTls('oidc-provider')
    this.#server = createServer({ cert: this.tls.certPem, key: this.tls.keyPem }, (req, res) =>
      this.#handler!(req, res),
    )
  }

  static async start(
    audience: string,
    clients: Record<string, { repository: string }>,
  ): Promise<OidcProviderIssuer> {
    const p = new OidcProviderIssuer(audience, clients)
    await new Promise<void>((resolve) => p.#server.listen(0, '127.0.0.1', resolve))
    p.url = `https://127.0.0.1:${(p.#server.address() as AddressInfo).port}`
    p.rotate()
    return p
  }

  /** A new RS256 signing key: tokens from now on carry a `kid` the CA has not seen. */
  rotate(): string {
    const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      format: 'jwk',
    })
    this.kid = randomUUID()
    const clients = this.clients
    const provider = new Provider(this.url, {
      clients: Object.keys(clients).map((client_id) => ({
        client_id,
        client_secret: this.#secret,
        token_endpoint_auth_method: 'client_secret_post',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      })),
      jwks: { keys: [{ ...jwk, alg: 'RS256', use: 'sig', kid: this.kid }] },
      cookies: { keys: [randomBytes(32).toString('base64url')] },
      extraTokenClaims: (_ctx: unknown, token: { clientId?: string }) => ({
        repository: clients[token.clientId ?? '']?.repository,
      }),
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => this.audience,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resource: string) => ({
            scope: 'enrol',
            audience: resource,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          }),
        },
      },
    })
    provider.on('server_error', (_ctx: unknown, err: Error) => console.error('server_error', err))
    this.#handler = provider.callback()
    return this.kid
  }

  /** A token for `clientId` from the provider's own token endpoint (for `resource`). */
  async token(clientId: string, resource = this.audience): Promise<string> {
    const dispatcher = new Agent({ connect: { ca: this.tls.caPem } })
    try {
      const res = await request(`${this.url}/token`, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: clientId,
          client_secret: this.#secret,
          resource,
          scope: 'enrol',
        }).toString(),
      })
      const body = (await res.body.json()) as { access_token?: string }
      if (res.statusCode !== 200 || !body.access_token) {
        throw new Error(`oidc-provider token: ${res.statusCode} ${JSON.stringify(body)}`)
      }
      return body.access_token
    } finally {
      await dispatcher.close()
    }
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
