import { Hono } from 'hono'
import type { Clock } from '../../clock.js'
import type { Config } from '../../config/load.js'
import type { Store } from '../../db/port.js'
import type { CertificateState, LineageRevocation } from '../../db/types.js'
import { CAError } from '../../errors.js'
import { GRANTS } from '../../tokens/grants.js'
import { introspect, revokeToken } from '../../tokens/introspection.js'
import type { SigningKeys } from '../../tokens/keys.js'
import { readOAuthForm } from '../body.js'
import type { AuthLimiter } from '../auth-limit.js'
import type { EventLimiter } from '../event-limit.js'
import { peerAddress, requireClientCert, type AppEnv, type PeerSource } from '../mtls.js'

export interface OAuthRouteDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly keys: SigningKeys
  readonly peer: PeerSource
  readonly events: EventLimiter
  readonly onContained?: (revoked: LineageRevocation) => void
  readonly limiter: AuthLimiter
}

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' }

/**
 * RFC 8705 tls_client_auth: the client is the SPIFFE ID of the presented certificate. The
 * optional client_id must match it; a disabled entry gets nothing.
 */
async function authenticateOAuthClient(
  client: CertificateState,
  form: Map<string, string>,
  deps: OAuthRouteDeps,
): Promise<void> {
  // Only workload certificates with an entry: an admin or server certificate is not a client,
  // and a client must be one that disabling its entry can stop.
  if (client.kind !== 'workload' || client.spiffeId === null || client.entryId === null) {
    throw new CAError('ERR_INVALID_CLIENT', 'only workload certificates can be OAuth clients')
  }
  const clientId = form.get('client_id')
  if (clientId !== undefined && clientId !== client.spiffeId) {
    throw new CAError('ERR_INVALID_CLIENT', 'client_id does not match the client certificate')
  }
  if (client.entryId !== null) {
    const entry = await deps.store.entries.get(client.entryId)
    if (!entry?.enabled)
      throw new CAError('ERR_INVALID_CLIENT', `the entry for ${client.spiffeId} is disabled`)
  }
}

/** The OAuth endpoints and discovery documents. Every OAuth endpoint needs mTLS: no bearer fallback. */
export function oauthRoutes(deps: OAuthRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  const mtls = requireClientCert(deps)
  // A retired generation asking for a token after renewal.clone_grace is a clone signal.
  const tokenClient = requireClientCert(deps, { use: 'token' })
  const { issuer } = deps.config.tokens

  app.post('/oauth/token', tokenClient, async (c) => {
    const client = c.var.client
    try {
      const form = await readOAuthForm(c)
      await authenticateOAuthClient(client, form, deps)
      const grantType = form.get('grant_type')
      if (grantType === undefined)
        throw new CAError('ERR_INVALID_OAUTH_REQUEST', 'grant_type is required')
      const grant = GRANTS.get(grantType)
      if (grant) c.set('grantType', grantType)
      // Never echo what the client sent: a secret pasted into the wrong field would be
      // stored in the audit table and sent back in error_description.
      if (!grant)
        throw new CAError(
          'ERR_UNSUPPORTED_GRANT_TYPE',
          `grant_type is not supported; this server takes ${[...GRANTS.keys()].join(', ')}`,
        )
      const peer = peerAddress(c)
      // Refused refreshes are audited by the grant, at most EVENTS_PER_WINDOW a minute per peer
      // and client certificate: a flood is bounded, another client's refusals still recorded.
      const key = `token.refresh_refused ${peer} ${client.serial}`
      const mayAuditRefusal = () => deps.events.allow(key) === 'yes'
      return c.json(
        await grant(client, form, { ...deps, mayAuditRefusal }, { peer }),
        200,
        NO_STORE,
      )
    } catch (e) {
      // Refusals of an authenticated client are audited (the refresh grant audits its own), at
      // most EVENTS_PER_WINDOW a minute per peer address. Requests without a valid
      // certificate never get here: they are logged, not stored.
      const peer = c.env.incoming.socket.remoteAddress
      if (
        e instanceof CAError &&
        e.code !== 'ERR_INVALID_GRANT' &&
        e.code !== 'ERR_CLONE_SUSPECTED' && // lineage.clone_detected records it
        deps.events.allow(`token.refused ${peer}`) === 'yes'
      ) {
        await deps.store.audit.record(deps.clock.now().getTime(), {
          actor: client.spiffeId ?? `serial:${client.serial}`,
          action: 'token.refused',
          subject: client.spiffeId,
          details: { reason: e.code, detail: e.message, cert_serial: client.serial },
        })
      }
      throw e
    }
  })

  app.post('/oauth/introspect', mtls, async (c) => {
    const form = await readOAuthForm(c)
    if (c.var.client.kind === 'workload')
      await authenticateOAuthClient(c.var.client, new Map(), deps)
    return c.json(await introspect(c.var.client, form, deps), 200, NO_STORE)
  })

  app.post('/oauth/revoke', mtls, async (c) => {
    const form = await readOAuthForm(c)
    await authenticateOAuthClient(c.var.client, form, deps)
    await revokeToken(c.var.client, form, deps)
    return c.body(null, 200, NO_STORE)
  })

  app.get('/.well-known/jwks.json', async (c) =>
    c.json(await deps.keys.jwks(), 200, {
      'cache-control': `public, max-age=${Math.floor(deps.config.tokens.jwksCacheTtlMs / 1000)}`,
    }),
  )

  app.get('/.well-known/oauth-authorization-server', (c) => {
    const endpoints = {
      token_endpoint: `${issuer}/oauth/token`,
      introspection_endpoint: `${issuer}/oauth/introspect`,
      revocation_endpoint: `${issuer}/oauth/revoke`,
    }
    return c.json({
      issuer,
      ...endpoints,
      jwks_uri: `${issuer}/.well-known/jwks.json`,
      grant_types_supported: [...GRANTS.keys()],
      // REQUIRED and non-empty for strict RFC 8414 validators (authlib). "none" (OAuth 2.0
      // Multiple Response Type Encoding Practices §4, IANA-registered; oidc-provider accepts it
      // as its only response type) promises nothing from an authorization endpoint, which this
      // server does not have.
      response_types_supported: ['none'],
      token_endpoint_auth_methods_supported: ['tls_client_auth'],
      introspection_endpoint_auth_methods_supported: ['tls_client_auth'],
      revocation_endpoint_auth_methods_supported: ['tls_client_auth'],
      tls_client_certificate_bound_access_tokens: true,
      // Every endpoint is already mTLS-only, so the aliases are the endpoints themselves (RFC 8705 §5).
      mtls_endpoint_aliases: endpoints,
    })
  })
  return app
}
