import { Hono } from 'hono'
import type { Authority, IssuedCertificate } from '../../ca/authority.js'
import type { CrlPublisher } from '../../ca/crl.js'
import { entryView, type EntryService } from '../../ca/entries.js'
import type { CaMaterial } from '../../ca/material.js'
import type { Clock } from '../../clock.js'
import type { Config } from '../../config/load.js'
import type { CertificateResponse } from '../../contract.js'
import type { Store } from '../../db/port.js'
import type { CertificateRecord } from '../../db/types.js'
import { CAError } from '../../errors.js'
import { derToPem } from '../../x509/pem.js'
import { limitFailedAuth, type AuthLimiter } from '../auth-limit.js'
import { limitParam, readJsonObject } from '../body.js'
import { requireAdmin, requireClientCert, type AppEnv, type PeerSource } from '../mtls.js'
import {
  certificateRequestBody,
  entryCreateBody,
  entryPatchBody,
  joinTokenBody,
  parseBody,
  revokeBody,
} from '../schemas.js'

export interface CaRouteDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  readonly authority: Authority
  readonly entries: EntryService
  readonly crl: CrlPublisher
  readonly peer: PeerSource
  readonly limiter: AuthLimiter
}

const SERIAL = /^[0-9a-fA-F]{2,64}$/
const STATUSES = ['valid', 'revoked', 'expired'] as const

export function certificateView(r: CertificateRecord, now: number) {
  return {
    serial: r.serial,
    spiffe_id: r.spiffeId,
    kind: r.kind,
    status: r.status === 'revoked' ? 'revoked' : now >= r.notAfter ? 'expired' : 'valid',
    not_before: new Date(r.notBefore).toISOString(),
    not_after: new Date(r.notAfter).toISOString(),
    issued_at: new Date(r.issuedAt).toISOString(),
    revoked_at: r.revokedAt === null ? null : new Date(r.revokedAt).toISOString(),
    revocation_reason: r.revocationReason,
    renewed_from: r.renewedFrom,
    entry_id: r.entryId,
    thumbprint: r.thumbprint,
    certificate: derToPem(r.der, 'CERTIFICATE'),
  }
}

/** The contract's certificate response for a certificate just issued. */
export function certificateResponse(issued: IssuedCertificate): CertificateResponse {
  const c = issued.certificate
  const leaf = derToPem(c.der, 'CERTIFICATE')
  return {
    serial: c.serial,
    spiffe_id: c.spiffeId!,
    certificate: leaf,
    chain: leaf + issued.issuerChainPem,
    not_before: new Date(c.notBefore).toISOString(),
    not_after: new Date(c.notAfter).toISOString(),
  }
}

/** The certificate request of a JSON body, as the domain takes it. */
async function certificateRequest(c: Parameters<typeof readJsonObject>[0]) {
  const body = parseBody(certificateRequestBody, await readJsonObject(c))
  return { csr: body.csr, ...(body.ttl && { ttlMs: body.ttl.ms }) }
}

/** The certificate API: public endpoints, enrolment, renewal and the admin routes. */
export function caRoutes(deps: CaRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  const admin = requireAdmin(deps)
  const mtls = requireClientCert(deps)

  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/v1/bundle', (c) =>
    c.body(deps.ca.bundlePem, 200, { 'content-type': 'application/x-pem-file' }),
  )
  app.get('/v1/crl', async (c) =>
    c.body(Buffer.from(await deps.crl.get()), 200, {
      'content-type': 'application/pkix-crl',
      'cache-control': 'max-age=60',
    }),
  )

  app.post('/v1/enroll', async (c) => {
    const auth = c.req.header('authorization') ?? ''
    // Over limits.failed_auth, even a right token is refused: it may have been guessed.
    const peer = c.env?.incoming?.socket?.remoteAddress
    const grant = await limitFailedAuth(
      deps.limiter,
      peer,
      async () => {
        // RFC 7235 §2.1: the scheme is case-insensitive and followed by one or more spaces.
        const m = /^Bearer +([A-Za-z0-9_-]{1,512})$/i.exec(auth)
        if (!m)
          throw new CAError(
            'ERR_JOIN_TOKEN_INVALID',
            'send the join token as "Authorization: Bearer <token>"',
          )
        return deps.authority.authenticateJoinToken(m[1]!)
      },
      { precheck: true },
    )
    const request = await certificateRequest(c)
    return c.json(certificateResponse(await deps.authority.enroll(grant, request)), 201)
  })

  app.post('/v1/renew', mtls, async (c) => {
    const request = await certificateRequest(c)
    return c.json(certificateResponse(await deps.authority.renew(c.var.client, request)), 201)
  })

  app.post('/v1/entries', admin, async (c) => {
    const body = parseBody(entryCreateBody, await readJsonObject(c))
    const entry = await deps.entries.create(
      {
        spiffeId: body.spiffe_id,
        dnsNames: body.dns_names,
        ttl: body.ttl,
        scopes: body.scopes,
      },
      actorOf(c.var.client),
    )
    return c.json(entryView(entry), 201, { location: `/v1/entries/${entry.id}` })
  })
  app.get('/v1/entries', admin, async (c) => {
    const page = await deps.entries.list(c.req.query('cursor'), limitParam(c))
    return c.json({ items: page.items.map(entryView), next_cursor: page.nextCursor })
  })
  app.get('/v1/entries/:id', admin, async (c) =>
    c.json(entryView(await deps.entries.get(c.req.param('id')))),
  )
  app.patch('/v1/entries/:id', admin, async (c) => {
    const body = parseBody(entryPatchBody, await readJsonObject(c))
    const entry = await deps.entries.update(
      c.req.param('id'),
      { enabled: body.enabled, dnsNames: body.dns_names, ttl: body.ttl, scopes: body.scopes },
      actorOf(c.var.client),
    )
    return c.json(entryView(entry))
  })
  app.post('/v1/entries/:id/join-tokens', admin, async (c) => {
    const body = parseBody(joinTokenBody, await readJsonObject(c, { optional: true }))
    const t = await deps.entries.createJoinToken(c.req.param('id'), body.ttl, actorOf(c.var.client))
    return c.json({ token: t.token, expires_at: new Date(t.expiresAt).toISOString() }, 201, {
      'cache-control': 'no-store',
    })
  })

  app.get('/v1/certificates', admin, async (c) => {
    const status = c.req.query('status')
    if (
      status !== undefined &&
      status !== '' &&
      !(STATUSES as readonly string[]).includes(status)
    ) {
      throw new CAError('ERR_BAD_REQUEST', `"status" must be one of ${STATUSES.join(', ')}`)
    }
    const now = deps.clock.now().getTime()
    const page = await deps.store.certificates.list({
      spiffeId: c.req.query('spiffe_id') || undefined,
      status: (status || undefined) as (typeof STATUSES)[number] | undefined,
      cursor: c.req.query('cursor'),
      limit: limitParam(c),
      now,
    })
    return c.json({
      items: page.items.map((r) => certificateView(r, now)),
      next_cursor: page.nextCursor,
    })
  })
  app.get('/v1/certificates/:serial', admin, async (c) => {
    const record = await deps.store.certificates.get(checkSerial(c.req.param('serial')))
    if (!record)
      throw new CAError('ERR_NOT_FOUND', `no certificate with serial ${c.req.param('serial')}`)
    return c.json(certificateView(record, deps.clock.now().getTime()))
  })
  app.post('/v1/certificates/:serial/revoke', admin, async (c) => {
    const serial = checkSerial(c.req.param('serial'))
    const body = parseBody(revokeBody, await readJsonObject(c, { optional: true }))
    const reason = body.reason ?? 'unspecified'
    const record = await deps.authority.revoke(serial, reason, actorOf(c.var.client))
    return c.json(certificateView(record, deps.clock.now().getTime()))
  })
  return app
}

function checkSerial(serial: string): string {
  if (!SERIAL.test(serial))
    throw new CAError(
      'ERR_BAD_REQUEST',
      'a serial is hex digits, as `openssl x509 -serial` prints it',
    )
  return serial.toLowerCase()
}

export function actorOf(client: CertificateRecord): string {
  return client.spiffeId ?? `serial:${client.serial}`
}
