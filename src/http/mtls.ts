import { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import type { HttpBindings } from '@hono/node-server'
import {
  VerifyError,
  createCertificateResolver,
  createProxyMatcher,
  forwardedCertificateHeaders,
  parsePemBundle,
  validateClientCertificate,
  type TrustStore,
} from '@certbound/verifier/mtls'
import type { Context } from 'hono'
import { createMiddleware } from 'hono/factory'
import type { Logger } from 'pino'
import { authenticateClientCertificate } from '../ca/client-identity.js'
import type { CertificateUse, GenerationDeps } from '../ca/generations.js'
import type { CaMaterial } from '../ca/material.js'
import type { CertificateState } from '../db/types.js'
import { CAError } from '../errors.js'
import { limitFailedAuth, type AuthLimiter } from './auth-limit.js'
import type { EventLimiter } from './event-limit.js'

export type AppEnv = {
  Bindings: HttpBindings
  Variables: {
    client: CertificateState
    requestId: string
    forwarded: boolean
    /** /oauth/token: the grant type, once it is one this server takes (for metrics). */
    grantType: string
    /** The request body once read (src/http/body-limit.ts `requestBody`). */
    requestBody: Buffer
  }
}

/** A request's client certificate, and whether it chains to this CA (checked by TLS or by us). */
export interface Peer {
  readonly authorized: boolean
  readonly certificate: X509Certificate | undefined
  /** Forwarded by a trusted proxy rather than presented in our own handshake. */
  readonly forwarded?: boolean
}

// The parsed peer certificate of each connection. Its bytes cannot change on a connection
// (renegotiation is off, TLS 1.3 post-handshake auth is never asked for), so it is parsed once,
// not once per request; what it is worth — chain, window, database status — is still decided
// on every request.
const peerCertificates = new WeakMap<TLSSocket, { certificate: X509Certificate | undefined }>()

/** What the TLS layer decided about the peer: read per request, never cached per connection. */
export function peerOf(env: HttpBindings | undefined): Peer {
  // No socket (an in-process `app.request()`): no client certificate, never an exception.
  const socket = env?.incoming?.socket as TLSSocket | undefined
  if (typeof socket?.getPeerX509Certificate !== 'function')
    return { authorized: false, certificate: undefined }
  // authorizationError too: `authorized` alone is set once per connection by Node.
  const authorized = socket.authorized === true && !socket.authorizationError
  let parsed = peerCertificates.get(socket)
  if (parsed === undefined) {
    parsed = { certificate: socket.getPeerX509Certificate() }
    peerCertificates.set(socket, parsed)
  }
  return { authorized, certificate: parsed.certificate }
}

/** Where a request's client certificate comes from (one source for every mTLS route). */
export type PeerSource = (c: Context<AppEnv>) => Promise<Peer>

/**
 * The TLS socket's certificate, for direct clients. From a peer in `server.trusted_proxies`,
 * the certificate in the one header `server.forwarded_client_cert` names (RFC 9440
 * `Client-Cert`, Envoy XFCC, nginx's escaped PEM) and nothing else: not another forwarding
 * header, which the proxy may have passed through from its client, and not the proxy's own TLS
 * certificate. A forwarded certificate is checked against our root and intermediate as the
 * handshake would have (a proxy's word is not enough), then in the database like any other.
 * A forwarding header from any other peer is a spoofing attempt: refused and logged. With
 * `server.trusted_proxy_ids`, the address is not enough: the proxy must also present its own
 * certificate of this CA, valid now, with one of those SPIFFE IDs.
 */
export function createPeerSource(
  deps: GenerationDeps & { ca: CaMaterial; logger: Logger; events: EventLimiter },
): PeerSource {
  const { trustedProxies, forwardedClientCert, trustedProxyIds } = deps.config.server
  const isTrustedProxy = createProxyMatcher(trustedProxies)
  const resolve = createCertificateResolver({
    trustedProxies,
    forwardedFormats: [forwardedClientCert],
  })
  // The CA set changes with a rotation: re-parsed when its PEM does.
  let trust = {
    bundle: '',
    intermediates: '',
    store: { anchors: [], intermediates: [] } as TrustStore,
  }
  const currentTrust = (): TrustStore => {
    const { bundlePem, intermediatesPem } = deps.ca
    if (trust.bundle !== bundlePem || trust.intermediates !== intermediatesPem) {
      const store = {
        anchors: parsePemBundle(bundlePem, 'the trust bundle'),
        intermediates: parsePemBundle(intermediatesPem, 'the issuing CAs'),
      }
      trust = { bundle: bundlePem, intermediates: intermediatesPem, store }
    }
    return trust.store
  }
  const refuse = (message: string) => new CAError('ERR_CLIENT_CERT_REQUIRED', message)
  // A proxy's own certificate must be current and unrevoked, like any client's.
  const checkProxyIdentity = async (c: Context<AppEnv>) => {
    if (trustedProxyIds === undefined) return
    const own = peerOf(c.env)
    const id = await authenticateClientCertificate(own, deps).then(
      (record) => record.spiffeId,
      () => null,
    )
    if (id === null || !trustedProxyIds.includes(id)) {
      throw refuse(
        'the proxy did not present a valid certificate of one of server.trusted_proxy_ids',
      )
    }
  }
  return async (c) => {
    const header = (name: string) => c.req.header(name)
    const peer = c.env?.incoming?.socket?.remoteAddress
    if (!isTrustedProxy(peer)) {
      const headers = forwardedCertificateHeaders(header)
      if (headers.length === 0) return peerOf(c.env)
      const allowed = deps.events.allow(`spoof ${peer}`)
      if (allowed !== 'no') {
        const more = allowed === 'last' ? '; more from this peer not logged this minute' : ''
        deps.logger.warn(
          { req: c.var.requestId, peer, headers },
          `forwarded client certificate from an untrusted peer refused (spoofing attempt)${more}`,
        )
      }
      throw refuse('forwarded client certificate from an untrusted peer')
    }
    await checkProxyIdentity(c)
    // The proxy's own TLS certificate never stands for its client (the resolver ignores it).
    const presented = resolve(header, c.env?.incoming?.socket, peer)
    if (!presented.ok) throw refuse(presented.error.message)
    const certificate = presented.certificate
    if (certificate === undefined)
      throw refuse(`the trusted proxy forwarded no client certificate (${forwardedClientCert})`)
    try {
      validateClientCertificate(certificate, currentTrust(), deps.clock.now(), presented.chain)
    } catch (e) {
      if (e instanceof VerifyError) throw refuse(`forwarded ${e.message}`)
      throw e
    }
    return { authorized: true, certificate, forwarded: true }
  }
}

/** The peer address of a request (for a trusted proxy, the proxy's). */
export function peerAddress(c: Context<AppEnv>): string | null {
  return c.env?.incoming?.socket?.remoteAddress ?? null
}

/**
 * mTLS: sets `client` to the certificate's database record, or refuses (401; 429 once the peer
 * address is over limits.failed_auth; a valid certificate never touches the limiter). `use`
 * says what the route uses the certificate for: a retired generation asking to renew or for a
 * token may be a clone (src/ca/generations.ts).
 */
export function requireClientCert(
  deps: GenerationDeps & { peer: PeerSource; limiter: AuthLimiter },
  options: { use?: CertificateUse } = {},
) {
  const use = options.use ?? 'other'
  return createMiddleware<AppEnv>(async (c, next) => {
    const address = peerAddress(c)
    const { peer, client } = await limitFailedAuth(deps.limiter, address ?? undefined, async () => {
      const peer = await deps.peer(c)
      const client = await authenticateClientCertificate(peer, deps, { use, peer: address })
      if (client.kind === 'server') {
        throw new CAError(
          'ERR_CLIENT_CERT_REQUIRED',
          "the server's own TLS certificate is not a client credential",
        )
      }
      return { peer, client }
    })
    c.set('client', client)
    c.set('forwarded', peer.forwarded === true)
    await next()
  })
}

/** Admin = a valid mTLS certificate whose SPIFFE ID is in admin.spiffe_ids (403 otherwise). */
export function requireAdmin(deps: GenerationDeps & { peer: PeerSource; limiter: AuthLimiter }) {
  const clientCert = requireClientCert(deps)
  return createMiddleware<AppEnv>(async (c, next) => {
    await clientCert(c, async () => {
      const id = c.var.client.spiffeId
      if (c.var.forwarded && !deps.config.server.proxyAdmin) {
        throw new CAError(
          'ERR_FORBIDDEN',
          'admin routes do not take identities forwarded by a proxy (server.proxy_admin)',
        )
      }
      if (
        c.var.client.kind !== 'admin' ||
        id === null ||
        !deps.config.admin.spiffeIds.includes(id)
      ) {
        throw new CAError('ERR_FORBIDDEN', `${id ?? 'this certificate'} is not an admin identity`)
      }
      await next()
    })
  })
}
