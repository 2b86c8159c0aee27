import { createHash, randomUUID } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import {
  SignJWT,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose'
import { loopbackTls, type LoopbackTls } from './tls.js'

/** A signing key of the loopback issuer. */
export interface IssuerKey {
  readonly kid: string
  readonly alg: 'RS256' | 'ES256'
  readonly privateKey: CryptoKey
  readonly publicJwk: JWK
}

export interface MintOptions {
  readonly key?: IssuerKey
  /** Protected header members over the defaults (`alg`, `kid`, `typ`). */
  readonly header?: Record<string, unknown>
  /** Seconds since the epoch; default now. */
  readonly iat?: number
  /** Seconds after `iat`; default 300. */
  readonly lifetime?: number
}

/**
 * A small OIDC issuer over real HTTPS on 127.0.0.1, serving discovery and a JWKS, for tokens
 * shaped like an external platform's. Hostile switches (`discoveryIssuer`, `extraJwks`,
 * `hang`) change what it serves; `fetches` counts requests per path. `githubTokenPath` answers
 * like GitHub Actions' ID token request URL.
 */
export class LoopbackIssuer {
  readonly keys: IssuerKey[] = []
  readonly fetches = new Map<string, number>()
  /** The `issuer` its discovery document names (default: its own URL). */
  discoveryIssuer: string | undefined
  /** Extra JWKs served in the JWKS (e.g. a symmetric key). */
  extraJwks: JWK[] = []
  /** When true, requests are accepted and never answered. */
  hang = false
  /** The bearer the GitHub-shaped token endpoint wants, and what it mints there. */
  githubRequestToken = randomUUID()
  githubClaims: (audience: string) => JWTPayload = () => ({})
  /** Every token the GitHub-shaped endpoint handed out, and the audience asked for. */
  readonly githubIssued: { token: string; audience: string }[] = []
  readonly #server: Server
  readonly #hanging = new Set<import('node:http').ServerResponse>()
  url = ''

  private constructor(readonly tls: LoopbackTls) {
    this.#server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      const path = (req.url ?? '').split('?')[0]!
      this.fetches.set(path, (this.fetches.get(path) ?? 0) + 1)
      if (this.hang) return void this.#hanging.add(res)
      void this.#answer(req, res, path)
    })
  }

  static async start(
    opts: { alg?: IssuerKey['alg']; path?: string } = {},
  ): Promise<LoopbackIssuer> {
    const issuer = new LoopbackIssuer(loopbackTls())
    await new Promise<void>((resolve) => issuer.#server.listen(0, '127.0.0.1', resolve))
    const { port } = issuer.#server.address() as AddressInfo
    issuer.url = `https://127.0.0.1:${port}${opts.path ?? ''}`
    await issuer.addKey(opts.alg ?? 'RS256')
    return issuer
  }

  /** The issuer's TLS root, written to a file (for `ca_bundle` or NODE_EXTRA_CA_CERTS). */
  caFile(path: string): string {
    writeFileSync(path, this.tls.caPem)
    return path
  }

  get jwksPath(): string {
    return `${new URL(this.url).pathname.replace(/\/$/, '')}/keys`
  }

  get githubTokenUrl(): string {
    const plan = randomUUID()
    const base = new URL(this.url).origin
    return `${base}/_apis/distributedtask/hubs/Actions/plans/${plan}/jobs/${randomUUID()}/idtoken?api-version=2.0`
  }

  /** Adds a signing key (the newest signs by default); `replace` drops the others from the JWKS. */
  async addKey(alg: IssuerKey['alg'], replace = false): Promise<IssuerKey> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
    const jwk = await exportJWK(publicKey)
    // Kubernetes' kid style: base64url SHA-256 of the public key.
    const kid = createHash('sha256').update(JSON.stringify(jwk)).digest('base64url')
    const key: IssuerKey = { kid, alg, privateKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } }
    if (replace) this.keys.splice(0)
    this.keys.push(key)
    return key
  }

  /** A signed token with these claims; `iss`, `iat`, `exp` filled in unless given. */
  async mint(claims: JWTPayload, opts: MintOptions = {}): Promise<string> {
    const key = opts.key ?? this.keys.at(-1)!
    const iat = opts.iat ?? Math.floor(Date.now() / 1000)
    return new SignJWT({ iss: this.url, iat, exp: iat + (opts.lifetime ?? 300), ...claims })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, ...opts.header } as never)
      .sign(key.privateKey)
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy()
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  async #answer(
    req: import('node:http').IncomingMessage,
    res: import('node:http').ServerResponse,
    path: string,
  ): Promise<void> {
    const json = (status: number, value: unknown): void =>
      void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value))
    const base = new URL(this.url).pathname.replace(/\/$/, '')
    if (path === `${base}/.well-known/openid-configuration`) {
      return json(200, {
        issuer: this.discoveryIssuer ?? this.url,
        jwks_uri: `${new URL(this.url).origin}${this.jwksPath}`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256', 'ES256'],
      })
    }
    if (path === this.jwksPath) {
      return json(200, { keys: [...this.keys.map((k) => k.publicJwk), ...this.extraJwks] })
    }
    if (path.startsWith('/_apis/distributedtask/') && path.endsWith('/idtoken')) {
      // GitHub Actions: `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, `&audience=`.
      if (req.headers.authorization !== `Bearer ${this.githubRequestToken}`) {
        return json(401, { message: 'bad request token' })
      }
      const audience = new URL(req.url!, 'https://x').searchParams.get('audience')
      if (!audience) return json(400, { message: 'audience required' })
      const value = await this.mint({ aud: audience, ...this.githubClaims(audience) })
      this.githubIssued.push({ token: value, audience })
      return json(200, { count: value.length, value })
    }
    json(404, { message: 'not found' })
  }
}
