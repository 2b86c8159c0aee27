import { Hono } from 'hono'
import type { Authority, IssuedCertificate } from '../../ca/authority.js'
import type { CrlPublisher } from '../../ca/crl.js'
import { entryView, type EntryService } from '../../ca/entries.js'
import { verifyExpiredRenewal } from '../../ca/expired-renewal.js'
import type { LineageRevocation } from '../../db/types.js'
import type { CaMaterial } from '../../ca/material.js'
import type { Clock } from '../../clock.js'
import type { Config } from '../../config/load.js'
import type { CertificateResponse } from '../../contract.js'
import type { Store } from '../../db/port.js'
import type { CertificateRecord, CertificateState } from '../../db/types.js'
import { CAError } from '../../errors.js'
import { isJwtShaped } from '../../federation/verify.js'
import { derToPem } from '../../x509/pem.js'
import { limitFailedAuth, type AuthLimiter } from '../auth-limit.js'
import { limitParam, readJsonObject } from '../body.js'
import {
  peerAddress,
  requireAdmin,
  requireClientCert,
  type AppEnv,
  type PeerSource,
} from '../mtls.js'
import {
  certificateRequestBody,
  entryCreateBody,
  entryPatchBody,
  joinTokenBody,
  oidcEnrollBody,
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
  /** Told when a clone alarm revoked a lineage (the CRL is rebuilt). */
  readonly onContained?: (revoked: LineageRevocation) => void
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
    lineage_id: r.lineageId,
    generation: r.generation,
    generation_state: r.lineageState,
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
    lineage_id: c.lineageId ?? null,
    generation: c.generation ?? null,
  }
}

/** The certificate request of a JSON body, as the domain takes it. */
async function certificateRequest(c: Parameters<typeof readJsonObject>[0]) {
  return certificateRequestOf(await readJsonObject(c))
}

function certificateRequestOf(json: Record<string, unknown>) {
  const body = parseBody(certificateRequestBody, json)
  return { csr: body.csr, ...(body.ttl && { ttlMs: body.ttl.ms }) }
}

/** The certificate API: public endpoints, enrolment, renewal and the admin routes. */
export function caRoutes(deps: CaRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  const admin = requireAdmin(deps)
  // A retired generation asking to renew is a clone signal (src/ca/generations.ts).
  const renewer = requireClientCert(deps, { use: 'renew' })

  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/v1/bundle', (c) =>
    c.body(deps.ca.bundlePem, 200, { 'content-type': 'application/x-pem-file' }),
  )

  app.post('/v1/enroll', async (c) => {
    const auth = c.req.header('authorization') ?? ''
    // RFC 7235 §2.1: the scheme is case-insensitive and followed by one or more spaces. A
    // credential of three base64url parts is an OIDC identity token, else a join token.
    const m = /^Bearer +([A-Za-z0-9_.-]{1,16384})$/i.exec(auth)
    const credential = m?.[1]
    // Over limits.failed_auth, even a right token is refused: it may have been guessed.
    const peer = peerAddress(c) ?? undefined
    if (credential !== undefined && isJwtShaped(credential)) {
      // The SPIFFE ID it enrols for is in the body: read that first, the CSR after the token.
      const json = await readJsonObject(c)
      const { spiffe_id } = parseBody(oidcEnrollBody, json)
      const grant = await limitFailedAuth(
        deps.limiter,
        peer,
        () => deps.authority.authenticateOidcToken(credential, spiffe_id),
        { precheck: true },
      )
      const request = certificateRequestOf(json)
      const issued = await deps.authority.enroll(grant, request, { peer: peerAddress(c) })
      return c.json(certificateResponse(issued), 201)
    }
    const grant = await limitFailedAuth(
      deps.limiter,
      peer,
      async () => {
        if (credential === undefined || credential.includes('.') || credential.length > 512)
          throw new CAError(
            'ERR_JOIN_TOKEN_INVALID',
            'send the join token (or an OIDC identity token) as "Authorization: Bearer <token>"',
          )
        return deps.authority.authenticateJoinToken(credential)
      },
      { precheck: true },
    )
    const request = await certificateRequest(c)
    const issued = await deps.authority.enroll(grant, request, { peer: peerAddress(c) })
    return c.json(certificateResponse(issued), 201)
  })

  app.post('/v1/renew', async (c, next) => {
    const authorization = c.req.header('authorization')
    if (authorization === undefined) return renewer(c, next)
    // Renewal after expiry: no client certificate, a proof of possession instead.
    if ((await deps.peer(c)).certificate !== undefined) {
      throw new CAError(
        'ERR_BAD_REQUEST',
        'renew over mTLS, or after expiry with a proof and no client certificate; not both',
      )
    }
    const peer = peerAddress(c)
    const { certificate, proof } = await limitFailedAuth(
      deps.limiter,
      peer ?? undefined,
      () => verifyExpiredRenewal(authorization, peer, deps),
      { precheck: true },
    )
    const request = await certificateRequest(c)
    const issued = await deps.authority.renew(certificate, request, { peer, proof })
    return c.json(certificateResponse(issued), 201)
  })
  app.post('/v1/renew', async (c) => {
    const request = await certificateRequest(c)
    const issued = await deps.authority.renew(c.var.client, request, { peer: peerAddress(c) })
    return c.json(certificateResponse(issued), 201)
  })

  app.post('/v1/entries', admin, async (c) => {
    const body = parseBody(entryCreateBody, await readJsonObject(c))
    const entry = await deps.entries.create(
      {
        spiffeId: body.spiffe_id,
        dnsNames: body.dns_names,
        ttl: body.ttl,
        scopes: body.scopes,
        ...(body.subject_cn !== undefined && { subjectCn: body.subject_cn }),
        renewAfterExpiry: body.renew_after_expiry,
        oidc: body.oidc,
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
      {
        enabled: body.enabled,
        dnsNames: body.dns_names,
        ttl: body.ttl,
        scopes: body.scopes,
        subjectCn: body.subject_cn,
        renewAfterExpiry: body.renew_after_expiry,
        oidc: body.oidc,
      },
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
      lineageId: c.req.query('lineage_id') || undefined,
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

export function actorOf(client: CertificateState): string {
  return client.spiffeId ?? `serial:${client.serial}`
}
