import type { TLSSocket } from 'node:tls'
import type { HttpBindings } from '@hono/node-server'
import { createMiddleware } from 'hono/factory'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { authenticateClientCertificate } from '../ca/client-identity.js'
import type { Store } from '../db/store.js'
import type { CertificateRecord } from '../db/types.js'
import { CAError } from '../errors.js'

export type AppEnv = {
  Bindings: HttpBindings
  Variables: { client: CertificateRecord; requestId: string }
}

/** What the TLS layer decided about the peer: read per request, never cached per connection. */
export function peerOf(env: HttpBindings): {
  authorized: boolean
  certificate: ReturnType<TLSSocket['getPeerX509Certificate']>
} {
  const socket = env.incoming.socket as TLSSocket
  if (typeof socket.getPeerX509Certificate !== 'function')
    return { authorized: false, certificate: undefined }
  // authorizationError too: `authorized` alone is set once per connection by Node.
  const authorized = socket.authorized === true && !socket.authorizationError
  return { authorized, certificate: socket.getPeerX509Certificate() }
}

/** mTLS: sets `client` to the certificate's database record, or refuses (401). */
export function requireClientCert(deps: { store: Store; clock: Clock }) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const client = await authenticateClientCertificate(peerOf(c.env), deps)
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
export function requireAdmin(deps: { store: Store; clock: Clock; config: Config }) {
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
