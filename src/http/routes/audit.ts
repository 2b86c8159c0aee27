import { Hono } from 'hono'
import { verifierKey } from '../../audit/note.js'
import { parseTilePath, TILE_WIDTH, HASH_SIZE } from '../../audit/tiles.js'
import type { Store } from '../../db/port.js'
import { CAError } from '../../errors.js'
import type { AppEnv } from '../mtls.js'

export interface AuditRouteDeps {
  readonly store: Store
}

const TILE_PREFIX = '/v1/audit/tile/'
const notYet = () => new CAError('ERR_NOT_FOUND', 'the audit log has no checkpoint yet')

/**
 * The audit log as a tiled transparency log (c2sp.org/tlog-tiles) under the prefix
 * `<issuer>/v1/audit`, public like the CRL: the signed checkpoint, the Merkle tree's tiles and
 * the verifier key checkpoints are signed with. The events themselves stay with the operator
 * (`certbound audit export`): no entry bundles.
 */
export function auditRoutes(deps: AuditRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()

  // tlog-tiles "Checkpoints": mutable, so not cached beyond a moment.
  app.get('/v1/audit/checkpoint', async (c) => {
    const latest = await deps.store.auditLog.latestCheckpoint()
    if (!latest) throw notYet()
    return c.body(latest.note, 200, {
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'no-cache',
    })
  })

  // The note verifier key (name+keyid+base64, as Go's sumdb/note and witnesses read it).
  app.get('/v1/audit/key', async (c) => {
    const key = await deps.store.auditLog.key()
    if (!key) throw notYet()
    return c.body(`${verifierKey(key.origin, key.publicKey)}\n`, 200, {
      'content-type': 'text/plain; charset=utf-8',
      'cache-control': 'public, max-age=3600',
    })
  })

  // tlog-tiles "Merkle Tree": immutable, a partial tile being a prefix of the stored one.
  app.get(`${TILE_PREFIX}*`, async (c) => {
    const at = parseTilePath(c.req.path.slice(TILE_PREFIX.length))
    if (!at) throw new CAError('ERR_NOT_FOUND', `not a tile path: ${c.req.path}`)
    const [tile] = await deps.store.auditLog.tiles([at])
    if (!tile || tile.width < at.width || (at.width === TILE_WIDTH) !== (tile.width === TILE_WIDTH))
      throw new CAError('ERR_NOT_FOUND', `no such tile: ${c.req.path}`)
    return c.body(Buffer.from(tile.hashes.subarray(0, at.width * HASH_SIZE)), 200, {
      'content-type': 'application/octet-stream',
      'cache-control': 'public, max-age=31536000, immutable',
    })
  })
  return app
}
