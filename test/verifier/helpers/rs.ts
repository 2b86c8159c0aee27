import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import type { ServerType } from '@hono/node-server'
import { Hono } from 'hono'
import { Agent, fetch } from 'undici'
import { certboundAuth } from '@certbound/verifier/hono'
import type { CertboundAuthOptions } from '@certbound/verifier/hono'
import type { Issued, TestPki } from './pki.js'

/** A real Hono resource server on `@hono/node-server` over HTTPS asking for client certificates. */
export interface ResourceServer {
  url: string
  close(): Promise<void>
}

/** Mounts `certboundAuth(routes[prefix])` on `/<prefix>/*`; handlers echo `c.get('certbound')`. */
export async function startResourceServer(
  pki: TestPki,
  routes: Record<string, CertboundAuthOptions>,
): Promise<ResourceServer> {
  const app = new Hono()
  for (const [prefix, options] of Object.entries(routes)) {
    app.use(`/${prefix}/*`, certboundAuth(options))
  }
  app.get('*', (c) => {
    const { claims, thumbprint, certificateSource } = c.get('certbound')
    return c.json({ sub: claims.sub, thumbprint, source: certificateSource })
  })
  const server: ServerType = await new Promise((resolve) => {
    const s = serve(
      {
        fetch: app.fetch,
        port: 0,
        hostname: '127.0.0.1',
        createServer,
        serverOptions: {
          cert: pki.server.chainPem,
          key: pki.server.keyPem,
          ca: pki.rootPem,
          requestCert: true,
          rejectUnauthorized: false,
        },
      },
      () => resolve(s),
    )
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        ;(server as import('node:https').Server).closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** An undici client trusting the test root, presenting `holder`'s chain if given. */
export function clientAgent(pki: TestPki, holder?: Issued): Agent {
  return new Agent({
    connect: holder
      ? { ca: pki.rootPem, cert: holder.chainPem, key: holder.keyPem }
      : { ca: pki.rootPem },
  })
}

/** GET with an optional bearer token and extra headers. */
export async function call(
  url: string,
  agent: Agent,
  token?: string,
  headers: Record<string, string> = {},
) {
  const res = await fetch(url, {
    dispatcher: agent,
    headers: token === undefined ? headers : { ...headers, authorization: `Bearer ${token}` },
  })
  const text = await res.text()
  return {
    status: res.status,
    challenge: res.headers.get('www-authenticate'),
    body: text === '' ? undefined : (JSON.parse(text) as Record<string, string>),
  }
}
