import { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import type { HttpBindings } from '@hono/node-server'
import {
  VerifyError,
  createCertificateResolver,
  createProxyMatcher,
  forwardedCertificateHeaders,
  validateClientCertificate,
} from '@certbound/verifier/mtls'
import type { Context } from 'hono'
import { createMiddleware } from 'hono/factory'
import type { Logger } from 'pino'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { authenticateClientCertificate } from '../ca/client-identity.js'
import type { CaMaterial } from '../ca/material.js'
import type { Store } from '../db/port.js'
import type { CertificateRecord } from '../db/types.js'
import { CAError } from '../errors.js'

export type AppEnv = {
  Bindings: HttpBindings
  Variables: { client: CertificateRecord; requestId: string }
}

/** A request's client certificate, and whether it chains to this CA (checked by TLS or by us). */
export interface Peer {
  readonly authorized: boolean
  readonly certificate: X509Certificate | undefined
}

/** What the TLS layer decided about the peer: read per request, never cached per connection. */
export function peerOf(env: HttpBindings): Peer {
  const socket = env.incoming.socket as TLSSocket
  if (typeof socket.getPeerX509Certificate !== 'function')
    return { authorized: false, certificate: undefined }
  // authorizationError too: `authorized` alone is set once per connection by Node.
  const authorized = socket.authorized === true && !socket.authorizationError
  return { authorized, certificate: socket.getPeerX509Certificate() }
}

/** Where a request's client certificate comes from (one source for every mTLS route). */
export type PeerSource = (c: Context<AppEnv>) => Peer

/**
 * The TLS socket's certificate, for direct clients. From a peer in `server.trusted_proxies`,
 * the certificate in the one header `server.forwarded_client_cert` names (RFC 9440
 * `Client-Cert`, Envoy XFCC, nginx's escaped PEM) and nothing else: not another forwarding
 * header, which the proxy may have passed through from its client, and not the proxy's own TLS
 * certificate. A forwarded certificate is checked against our root and intermediate as the
 * handshake would have (a proxy's word is not enough), then in the database like any other.
 * A forwarding header from any other peer is a spoofing attempt: refused and logged.
 */
export function createPeerSource(deps: {
  config: Config
  ca: CaMaterial
  clock: Clock
  logger: Logger
}): PeerSource {
  const { trustedProxies, forwardedClientCert } = deps.config.server
  const isTrustedProxy = createProxyMatcher(trustedProxies)
  const resolve = createCertificateResolver({
    trustedProxies,
    forwardedFormats: [forwardedClientCert],
  })
  const trust = {
    anchors: [new X509Certificate(deps.ca.bundlePem)],
    intermediates: [new X509Certificate(deps.ca.intermediatePem)],
  }
  const refuse = (message: string) => new CAError('ERR_CLIENT_CERT_REQUIRED', message)
  return (c) => {
    const header = (name: string) => c.req.header(name)
    const peer = c.env.incoming.socket.remoteAddress
    if (!isTrustedProxy(peer)) {
      const headers = forwardedCertificateHeaders(header)
      if (headers.length === 0) return peerOf(c.env)
      deps.logger.warn(
        { req: c.var.requestId, peer, headers },
        'forwarded client certificate from an untrusted peer refused (spoofing attempt)',
      )
      throw refuse('forwarded client certificate from an untrusted peer')
    }
    // The proxy's own TLS certificate never stands for its client (the resolver ignores it).
    const presented = resolve(header, c.env.incoming.socket, peer)
    if (!presented.ok) throw refuse(presented.error.message)
    const certificate = presented.certificate
    if (certificate === undefined)
      throw refuse(`the trusted proxy forwarded no client certificate (${forwardedClientCert})`)
    try {
      validateClientCertificate(certificate, trust, deps.clock.now(), presented.chain)
    } catch (e) {
      if (e instanceof VerifyError) throw refuse(`forwarded ${e.message}`)
      throw e
    }
    return { authorized: true, certificate }
  }
}

/** mTLS: sets `client` to the certificate's database record, or refuses (401). */
export function requireClientCert(deps: { store: Store; clock: Clock; peer: PeerSource }) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const client = await authenticateClientCertificate(deps.peer(c), deps)
    if (client.kind === 'server') {
      throw new CAError(
        'ERR_CLIENT_CERT_REQUIRED',
        "the server's own TLS certificate is not a client credential",
      )
    }
    c.set('client', client)
    await next()
  })
}

/** Admin = a valid mTLS certificate whose SPIFFE ID is in admin.spiffe_ids (403 otherwise). */
export function requireAdmin(deps: {
  store: Store
  clock: Clock
  config: Config
  peer: PeerSource
}) {
  const clientCert = requireClientCert(deps)
  return createMiddleware<AppEnv>(async (c, next) => {
    await clientCert(c, async () => {
      const id = c.var.client.spiffeId
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
