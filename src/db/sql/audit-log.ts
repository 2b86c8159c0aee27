import type { SqlDriver, SqlExecutor, SqlValue } from '../driver.js'
import type { AuditLogStore } from '../port.js'
import type {
  AuditInput,
  AuditLogKey,
  AuditTile,
  LogAppender,
  LogAppendResult,
  LoggedAuditEvent,
  StoredCheckpoint,
} from '../types.js'
import { writeAudit } from './audit.js'
import type { AuditRow } from './rows.js'

interface KeyRow {
  origin: string
  public_key: Uint8Array
  private_key_sealed: Uint8Array
  created_at: number
  pruned_below: number
}

interface TileRow {
  level: number
  tile_index: number
  width: number
  hashes: Uint8Array
}

interface CheckpointRow {
  tree_size: number
  root_hash: Uint8Array
  created_at: number
  note: string
}

interface EventRow extends AuditRow {
  leaf_index: number | null
}

const EVENT_COLUMNS = 'id, at, actor, action, subject, details, leaf_index'
// Leaf indices are set with one UPDATE per chunk of this many events.
const ASSIGN_CHUNK = 500

const toKey = (r: KeyRow): AuditLogKey => ({
  origin: r.origin,
  publicKey: new Uint8Array(r.public_key),
  privateKeySealed: new Uint8Array(r.private_key_sealed),
  createdAt: r.created_at,
  prunedBelow: r.pruned_below,
})
const toTile = (r: TileRow): AuditTile => ({
  level: r.level,
  index: r.tile_index,
  width: r.width,
  hashes: new Uint8Array(r.hashes),
})
const toCheckpoint = (r: CheckpointRow): StoredCheckpoint => ({
  treeSize: r.tree_size,
  rootHash: new Uint8Array(r.root_hash),
  createdAt: r.created_at,
  note: r.note,
})
const toEvent = (r: EventRow): LoggedAuditEvent => ({
  id: r.id,
  at: r.at,
  actor: r.actor,
  action: r.action,
  subject: r.subject,
  details: r.details,
  leafIndex: r.leaf_index,
})

async function readTiles(
  x: SqlExecutor,
  keys: readonly { level: number; index: number }[],
): Promise<AuditTile[]> {
  if (keys.length === 0) return []
  const rows = await x.all<TileRow>(
    `SELECT * FROM audit_tiles WHERE ${keys.map(() => '(level = ? AND tile_index = ?)').join(' OR ')}`,
    keys.flatMap((k) => [k.level, k.index]),
  )
  return rows.map(toTile)
}

/** Gives events their leaf indices: `first`, `first + 1`, … in the order given. */
async function assignLeaves(tx: SqlExecutor, ids: readonly number[], first: number) {
  for (let at = 0; at < ids.length; at += ASSIGN_CHUNK) {
    const chunk = ids.slice(at, at + ASSIGN_CHUNK)
    const params: SqlValue[] = chunk.flatMap((id, i) => [id, first + at + i])
    // CAST: PostgreSQL types a CASE of bare parameters as text.
    const changed = await tx.run(
      `UPDATE audit_events SET leaf_index = CASE id ${chunk.map(() => 'WHEN ? THEN CAST(? AS BIGINT)').join(' ')} END
       WHERE leaf_index IS NULL AND id IN (${chunk.map(() => '?').join(', ')})`,
      [...params, ...chunk],
    )
    // Only the lock holder assigns leaves: anything else is a bug, and must not commit.
    if (changed !== chunk.length) throw new Error('audit events changed under the log lock')
  }
}

/** The audit log's tree, tiles and checkpoints (see AuditLogStore). */
export class SqlAuditLogStore implements AuditLogStore {
  constructor(private readonly db: SqlDriver) {}

  createKey(key: AuditLogKey, event: AuditInput): Promise<AuditLogKey> {
    return this.db.transaction(async (tx) => {
      const created = await tx.run(
        `INSERT INTO audit_log (id, origin, public_key, private_key_sealed, created_at, pruned_below)
         VALUES (1, ?, ?, ?, ?, 0) ON CONFLICT (id) DO NOTHING`,
        [key.origin, key.publicKey, key.privateKeySealed, key.createdAt],
      )
      if (created === 1) await writeAudit(tx, key.createdAt, event)
      return toKey((await tx.get<KeyRow>('SELECT * FROM audit_log WHERE id = 1'))!)
    })
  }

  async key(): Promise<AuditLogKey | undefined> {
    const row = await this.db.get<KeyRow>('SELECT * FROM audit_log WHERE id = 1')
    return row && toKey(row)
  }

  async pending(): Promise<{ count: number; oldestAt: number | null }> {
    const row = await this.db.get<{ n: number; oldest: number | null }>(
      'SELECT count(*) AS n, min(at) AS oldest FROM audit_events WHERE leaf_index IS NULL',
    )
    return { count: row?.n ?? 0, oldestAt: row?.oldest ?? null }
  }

  append(
    limit: number,
    appender: LogAppender,
  ): Promise<(LogAppendResult & { appended: number }) | undefined> {
    return this.db.transaction(async (tx) => {
      // One appender at a time across processes and replicas (SQLite: the write lock).
      await tx.get(`SELECT name FROM locks WHERE name = 'audit_log'${this.db.forUpdate}`)
      const last = await tx.get<CheckpointRow>(
        'SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1',
      )
      const previous = last && toCheckpoint(last)
      const treeSize = previous?.treeSize ?? 0
      // Committed events only (READ COMMITTED): one whose transaction commits later, with a
      // lower id, is appended by a later batch. The order within a batch is the id order.
      const rows = await tx.all<EventRow>(
        `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE leaf_index IS NULL ORDER BY id LIMIT ?`,
        [limit],
      )
      if (rows.length === 0) return undefined
      const tiles = await readTiles(tx, appender.edgeTiles(treeSize))
      const events = rows.map(toEvent)
      const result = appender.extend({ treeSize, previous, events, tiles })
      await assignLeaves(
        tx,
        events.map((e) => e.id),
        treeSize,
      )
      for (const t of result.tiles) {
        await tx.run(
          `INSERT INTO audit_tiles (level, tile_index, width, hashes) VALUES (?, ?, ?, ?)
           ON CONFLICT (level, tile_index) DO UPDATE SET width = excluded.width, hashes = excluded.hashes`,
          [t.level, t.index, t.width, t.hashes],
        )
      }
      const c = result.checkpoint
      await tx.run(
        'INSERT INTO audit_checkpoints (tree_size, root_hash, created_at, note) VALUES (?, ?, ?, ?)',
        [c.treeSize, c.rootHash, c.createdAt, c.note],
      )
      return { ...result, appended: events.length }
    })
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const row = await this.db.get<CheckpointRow>(
      'SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1',
    )
    return row && toCheckpoint(row)
  }

  async checkpoints(after: number, limit: number): Promise<StoredCheckpoint[]> {
    const rows = await this.db.all<CheckpointRow>(
      'SELECT * FROM audit_checkpoints WHERE tree_size > ? ORDER BY tree_size LIMIT ?',
      [after, limit],
    )
    return rows.map(toCheckpoint)
  }

  tiles(keys: readonly { level: number; index: number }[]): Promise<AuditTile[]> {
    return readTiles(this.db, keys)
  }

  async tileRange(level: number, from: number, limit: number): Promise<AuditTile[]> {
    const rows = await this.db.all<TileRow>(
      'SELECT * FROM audit_tiles WHERE level = ? AND tile_index >= ? ORDER BY tile_index LIMIT ?',
      [level, from, limit],
    )
    return rows.map(toTile)
  }

  async eventsByLeaf(from: number, limit: number): Promise<LoggedAuditEvent[]> {
    const rows = await this.db.all<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM audit_events WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?`,
      [from, limit],
    )
    return rows.map(toEvent)
  }

  prune(
    cutoff: number,
    limit: number,
    now: number,
  ): Promise<{ events: number; checkpoints: number; prunedBelow: number }> {
    return this.db.transaction(async (tx) => {
      await tx.get(`SELECT name FROM locks WHERE name = 'audit_log'${this.db.forUpdate}`)
      const key = await tx.get<{ pruned_below: number }>(
        'SELECT pruned_below FROM audit_log WHERE id = 1',
      )
      const newest = await tx.get<{ n: number | null }>(
        'SELECT max(tree_size) AS n FROM audit_checkpoints',
      )
      const from = key?.pruned_below ?? 0
      const size = newest?.n ?? 0
      const upTo = Math.min(size, from + limit)
      // Leaves in order, up to the first event still inside the retention (times are close to,
      // not exactly in, leaf order: the boundary is conservative).
      const kept = await tx.get<{ b: number | null }>(
        'SELECT min(leaf_index) AS b FROM audit_events WHERE leaf_index >= ? AND leaf_index < ? AND at >= ?',
        [from, upTo, cutoff],
      )
      const below = kept?.b ?? upTo
      if (!key || below <= from) return { events: 0, checkpoints: 0, prunedBelow: from }
      const events = await tx.run(
        'DELETE FROM audit_events WHERE leaf_index >= ? AND leaf_index < ?',
        [from, below],
      )
      const checkpoints = await tx.run(
        'DELETE FROM audit_checkpoints WHERE created_at < ? AND tree_size < ?',
        [cutoff, size],
      )
      await tx.run('UPDATE audit_log SET pruned_below = ? WHERE id = 1', [below])
      await writeAudit(tx, now, {
        actor: 'system',
        action: 'audit_log.prune',
        details: {
          pruned_below: below,
          events,
          checkpoints,
          cutoff: new Date(cutoff).toISOString(),
        },
      })
      return { events, checkpoints, prunedBelow: below }
    })
  }

  async eventsBySubject(subject: string, actions: readonly string[]): Promise<LoggedAuditEvent[]> {
    if (actions.length === 0) return []
    const rows = await this.db.all<EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM audit_events
       WHERE subject = ? AND action IN (${actions.map(() => '?').join(', ')}) ORDER BY id`,
      [subject, ...actions],
    )
    return rows.map(toEvent)
  }
}
