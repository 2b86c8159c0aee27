import { constants } from 'node:crypto'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { getRequestListener } from '@hono/node-server'
import type { Hono } from 'hono'
import type { Config } from '../config/load.js'
import { guardHandshakes, type HandshakeGuard } from '@certbound/verifier/mtls'
import { answerMalformedRequests } from './client-error.js'
import type { AppEnv } from './mtls.js'

export interface TlsMaterial {
  readonly certPem: string
  readonly keyPem: string
  /** Root and intermediate: clients send only their leaf. */
  readonly caPem: string
}

/**
 * TLS 1.3 first (Node negotiates the highest both sides have); for TLS 1.2 only AEAD suites with
 * forward secrecy: no RSA key transport, no CBC (LUCKY13), no finite-field DHE.
 */
const CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':')

/**
 * The context of every handshake. `setSecureContext` replaces the whole context, so the
 * renewal path must pass the same options or the hardening silently disappears.
 */
function secureContextOptions(tls: TlsMaterial) {
  return {
    cert: tls.certPem,
    key: tls.keyPem,
    ca: tls.caPem,
    minVersion: 'TLSv1.2' as const,
    ciphers: CIPHERS,
    honorCipherOrder: true,
    // A TLS 1.2 renegotiation could swap the peer certificate under a decided connection.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
  }
}

/** Connection limits of `server.handshakes` and `server.connections`. */
export type ServerLimits = Pick<Config['server'], 'handshakes' | 'connections'>

const guards = new WeakMap<Server, HandshakeGuard>()

/** The handshake guard of a server made by {@link createHttpsServer} (tests read its counters). */
export function handshakeGuardOf(server: Server): HandshakeGuard | undefined {
  return guards.get(server)
}

/**
 * HTTPS that asks for, but does not require, a client certificate: each route decides,
 * from `socket.authorized` and the database, on every request. Asking for certificates is
 * what makes a handshake expensive to a hostile client, hence the handshake guard.
 */
export function createHttpsServer(
  app: Hono<AppEnv>,
  tls: TlsMaterial,
  limits?: ServerLimits,
): Server {
  const c = limits?.connections
  const server = createServer(
    {
      ...secureContextOptions(tls),
      requestCert: true,
      rejectUnauthorized: false,
      ...(c && {
        headersTimeout: c.headersTimeoutMs,
        requestTimeout: c.requestTimeoutMs,
        keepAliveTimeout: c.keepAliveTimeoutMs,
        // Node checks the two timeouts above only this often (default 30 s).
        connectionsCheckingInterval: Math.min(1_000, c.headersTimeoutMs),
      }),
    },
    getRequestListener(app.fetch),
  )
  answerMalformedRequests(server)
  if (limits) {
    const h = limits.handshakes
    guards.set(
      server,
      guardHandshakes(server, {
        maxHandshakes: h.maxInFlight,
        maxHandshakesPerAddress: h.maxInFlightPerAddress,
        maxQueued: h.maxQueued,
        maxQueuedPerAddress: h.maxQueuedPerAddress,
        queueTimeoutMs: h.queueTimeoutMs,
        handshakeTimeoutMs: h.timeoutMs,
        maxHandshakeBytes: h.maxClientBytes,
        maxConnectionsPerAddress: limits.connections.maxPerAddress,
      }),
    )
  }
  return server
}

/** Swaps in a renewed server certificate for new connections, without a restart. */
export function replaceTlsMaterial(server: Server, tls: TlsMaterial): void {
  server.setSecureContext(secureContextOptions(tls))
}

export function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve(server.address() as AddressInfo)
    })
  })
}

/** Stops accepting, lets in-flight requests finish, then closes idle keep-alive sockets. */
export function closeGracefully(server: Server, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), timeoutMs)
    // Keep-alive connections become idle as their last request finishes: close them then.
    const sweep = setInterval(() => server.closeIdleConnections(), 50)
    timer.unref()
    // Waiting and handshaking connections are not requests yet: nothing to finish.
    guards.get(server)?.close()
    server.close(() => {
      clearTimeout(timer)
      clearInterval(sweep)
      resolve()
    })
    server.closeIdleConnections()
  })
}
