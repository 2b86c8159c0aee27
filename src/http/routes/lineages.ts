import { Hono } from 'hono'
import type { Authority } from '../../ca/authority.js'
import type { Clock } from '../../clock.js'
import type { Config } from '../../config/load.js'
import type { Store } from '../../db/port.js'
import type { CertificateRecord, LineageWithGenerations } from '../../db/types.js'
import { CAError } from '../../errors.js'
import type { AuthLimiter } from '../auth-limit.js'
import { readJsonObject } from '../body.js'
import { requireAdmin, type AppEnv, type PeerSource } from '../mtls.js'
import { parseBody, revokeBody } from '../schemas.js'
import { actorOf } from './ca.js'

export interface LineageRouteDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly authority: Authority
  readonly peer: PeerSource
  readonly limiter: AuthLimiter
}

const LINEAGE_ID = /^[A-Za-z0-9-]{1,64}$/
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

/** A generation's state for admins: revoked wins, then expired, then its place in the lineage. */
function generationState(c: CertificateRecord, now: number): string {
  if (c.status === 'revoked') return 'revoked'
  if (now >= c.notAfter) return 'expired'
  return c.lineageState ?? 'retired'
}

/** `GET /v1/lineages/{id}` (CONTRACT "Lineages"). */
export function lineageView(l: LineageWithGenerations, now: number) {
  const live = l.generations.some((g) => g.status === 'valid')
  return {
    id: l.id,
    spiffe_id: l.spiffeId,
    entry_id: l.entryId,
    // A lineage whose every certificate was revoked one by one is as dead as a revoked one.
    status: l.status === 'revoked' || !live ? 'revoked' : 'active',
    created_at: iso(l.createdAt),
    revoked_at: iso(l.revokedAt),
    revocation_reason: l.revokedReason,
    generations: l.generations.map((g) => ({
      serial: g.serial,
      generation: g.generation,
      state: generationState(g, now),
      not_before: iso(g.notBefore),
      not_after: iso(g.notAfter),
      retired_at: iso(g.retiredAt),
      revocation_reason: g.revocationReason,
      last_peer: g.lastPeer,
    })),
  }
}

function checkId(id: string): string {
  if (!LINEAGE_ID.test(id))
    throw new CAError('ERR_BAD_REQUEST', 'a lineage id is letters, digits and "-" (64 at most)')
  return id
}

/** The admin routes of lineages. */
export function lineageRoutes(deps: LineageRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  const admin = requireAdmin(deps)
  app.get('/v1/lineages/:id', admin, async (c) => {
    const lineage = await deps.store.lineages.get(checkId(c.req.param('id')))
    if (!lineage) throw new CAError('ERR_NOT_FOUND', `no lineage with id ${c.req.param('id')}`)
    return c.json(lineageView(lineage, deps.clock.now().getTime()))
  })
  app.post('/v1/lineages/:id/revoke', admin, async (c) => {
    const id = checkId(c.req.param('id'))
    const body = parseBody(revokeBody, await readJsonObject(c, { optional: true }))
    const lineage = await deps.authority.revokeLineage(
      id,
      body.reason ?? 'unspecified',
      actorOf(c.var.client),
    )
    return c.json(lineageView(lineage, deps.clock.now().getTime()))
  })
  return app
}
