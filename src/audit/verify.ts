import type { AuditLogStore } from '../db/port.js'
import type { AuditLogKey, AuditTile, LoggedAuditEvent, StoredCheckpoint } from '../db/types.js'
import { isCAError } from '../errors.js'
import { leafData } from './event.js'
import { Frontier, leafHash } from './merkle.js'
import { openNote, parseCheckpoint, verifierKey, type NoteVerifier } from './note.js'
import { RecomputedTiles } from './recomputed-tiles.js'
import { entry, HASH_SIZE, TILE_WIDTH, tilePath } from './tiles.js'
import {
  anchorKey,
  Failure,
  same,
  savedCheckpoints,
  type FailedVerification,
  type VerifiedLog,
  type VerifyOptions,
} from './verify-anchors.js'

export type { FailedVerification, VerifiedLog, VerifyOptions } from './verify-anchors.js'

const PAGE = 1000

const b64 = (h: Uint8Array) => Buffer.from(h).toString('base64')
const describe = (e: LoggedAuditEvent) =>
  `event ${e.id} (${e.action}${e.subject ? ` ${e.subject}` : ''})`

/**
 * `certbound audit verify`: recomputes every leaf hash from the stored events, the tree and
 * its tiles from them, and every stored checkpoint's root and signature, up to the newest
 * checkpoint at the start (the server may go on appending meanwhile). Stops at the first leaf,
 * tile or checkpoint that does not verify and names it.
 */
export async function verifyAuditLog(
  store: AuditLogStore,
  options: VerifyOptions = {},
): Promise<VerifiedLog | FailedVerification> {
  try {
    return await new LogWalk(store, options).run()
  } catch (e) {
    if (e instanceof Failure) return { ok: false, ...e.detail }
    throw e
  }
}

class LogWalk {
  readonly #frontier = new Frontier()
  readonly #rebuilt = new RecomputedTiles()
  #stored: AuditTile | undefined
  // Checkpoints of at most #size leaves, read a page at a time, smallest first.
  #queue: StoredCheckpoint[] = []
  #loadedUpTo = -1
  #exhausted = false
  #checked = 0
  #pruned = 0
  #size = 0
  #sinceCheckpoint: LoggedAuditEvent | undefined
  #key!: AuditLogKey
  #verifier!: NoteVerifier
  #saved: { treeSize: number; rootHash: Uint8Array }[] = []

  constructor(
    private readonly store: AuditLogStore,
    private readonly options: VerifyOptions,
  ) {}

  async run(): Promise<VerifiedLog> {
    const [key, latest, pending] = await Promise.all([
      this.store.key(),
      this.store.latestCheckpoint(),
      this.store.pending(),
    ])
    const size = latest?.treeSize ?? 0
    if (!key) {
      const leaves = await this.store.eventsByLeaf(0, 1)
      if (latest || leaves.length > 0) throw new Failure({ problem: 'the log has no key' })
      if (this.options.verifier) throw new Failure({ problem: 'the log has no key yet' })
      return this.#report(null, size, pending)
    }
    this.#key = key
    this.#verifier = anchorKey(key, this.options)
    this.#saved = savedCheckpoints(this.options.checkpoints ?? [], this.#verifier, size)
    await this.#walk(size)
    // An appended leaf is in a checkpoint of the same transaction: one beyond is forged.
    const newest = (await this.store.latestCheckpoint())?.treeSize ?? 0
    const beyond = await this.store.eventsByLeaf(newest, 1)
    if (beyond.length > 0)
      throw new Failure({
        problem: `${describe(beyond[0]!)} has leaf index ${beyond[0]!.leafIndex}, beyond every checkpoint`,
        leaf_index: beyond[0]!.leafIndex!,
        event_id: beyond[0]!.id,
      })
    return this.#report(latest ?? null, size, pending)
  }

  async #walk(size: number): Promise<void> {
    this.#size = size
    await this.#checkpointsUpTo(0)
    let next = 0
    while (next < size) {
      const page = await this.store.eventsByLeaf(next, Math.min(PAGE, size - next))
      const within = page.filter((e) => e.leafIndex! < size)
      for (const e of within) {
        while (next < e.leafIndex!) await this.#missing(next++, e)
        await this.#leaf(e)
        next++
      }
      if (within.length < page.length || page.length === 0) break
    }
    while (next < size) await this.#missing(next++, undefined)
    for (const tile of this.#rebuilt.partial()) await this.#compareTile(tile)
  }

  async #leaf(e: LoggedAuditEvent): Promise<void> {
    const index = e.leafIndex!
    const hash = leafHash(leafData(e))
    const stored = await this.#storedLeaf(index)
    if (!stored || !same(stored, hash)) {
      throw new Failure({
        problem: `${describe(e)} at leaf ${index} does not match the leaf hash logged there: changed or moved after it was logged`,
        leaf_index: index,
        event_id: e.id,
      })
    }
    this.#sinceCheckpoint ??= e
    await this.#append(hash)
  }

  /** A leaf without its event: purged by retention below `prunedBelow`, else deleted. */
  async #missing(index: number, after: LoggedAuditEvent | undefined): Promise<void> {
    const stored = await this.#storedLeaf(index)
    if (index >= this.#key.prunedBelow || !stored) {
      throw new Failure({
        problem: `leaf ${index} has no event: it was deleted${after ? ` (the next one is ${describe(after)})` : ''}`,
        leaf_index: index,
      })
    }
    this.#pruned++
    await this.#append(stored)
  }

  async #append(hash: Uint8Array): Promise<void> {
    this.#frontier.push(hash)
    for (const tile of this.#rebuilt.push(hash)) await this.#compareTile(tile)
    await this.#checkpointsUpTo(this.#frontier.size)
  }

  async #storedLeaf(index: number): Promise<Uint8Array | undefined> {
    const tileIndex = Math.floor(index / TILE_WIDTH)
    if (this.#stored?.index !== tileIndex)
      this.#stored = (await this.store.tiles([{ level: 0, index: tileIndex }]))[0]
    const i = index % TILE_WIDTH
    return this.#stored && this.#stored.width > i ? entry(this.#stored, i) : undefined
  }

  /** A rebuilt tile must be a prefix of the stored one (that may have grown since). */
  async #compareTile(tile: AuditTile): Promise<void> {
    const [stored] =
      tile.level === 0 && this.#stored?.index === tile.index
        ? [this.#stored]
        : await this.store.tiles([tile])
    const prefix = stored?.hashes.subarray(0, tile.width * HASH_SIZE)
    if (!stored || stored.width < tile.width || !same(prefix!, tile.hashes)) {
      throw new Failure({
        problem: `tile ${tilePath(tile.level, tile.index, tile.width)} does not hold the hashes of the events below it`,
        leaf_index: tile.index * TILE_WIDTH ** (tile.level + 1),
      })
    }
  }

  /** Checks every checkpoint of `size` leaves, the tree having `size` leaves now. */
  async #checkpointsUpTo(size: number): Promise<void> {
    while (this.#saved[0] && this.#saved[0].treeSize <= size) {
      const saved = this.#saved.shift()!
      if (!same(saved.rootHash, this.#frontier.root()))
        throw new Failure({
          problem: `the tree of ${saved.treeSize} leaves is not the one of a checkpoint the log signed (saved elsewhere): its history was rewritten`,
          ...(this.#sinceCheckpoint
            ? { leaf_index: this.#sinceCheckpoint.leafIndex!, event_id: this.#sinceCheckpoint.id }
            : {}),
        })
    }
    for (let c = await this.#peek(); c && c.treeSize <= size; c = await this.#peek()) {
      this.#queue.shift()
      this.#checkCheckpoint(c)
    }
  }

  async #peek(): Promise<StoredCheckpoint | undefined> {
    if (this.#queue.length === 0 && !this.#exhausted) {
      const page = await this.store.checkpoints(this.#loadedUpTo, PAGE)
      this.#queue = page.filter((c) => c.treeSize <= this.#size)
      this.#exhausted = this.#queue.length < PAGE
      if (this.#queue.length > 0) this.#loadedUpTo = this.#queue.at(-1)!.treeSize
    }
    return this.#queue[0]
  }

  #checkCheckpoint(c: StoredCheckpoint): void {
    const root = this.#frontier.root()
    const first = this.#sinceCheckpoint
    const fail = (why: string) => {
      throw new Failure({
        problem: `the checkpoint of ${c.treeSize} leaves ${why}`,
        ...(first ? { leaf_index: first.leafIndex!, event_id: first.id } : {}),
      })
    }
    let text: string
    try {
      text = openNote(c.note, this.#verifier)
    } catch (e) {
      if (!isCAError(e, 'ERR_AUDIT_LOG_INVALID')) throw e
      return fail(`is not signed by the log's key: ${e.message}`)
    }
    const parsed = parseCheckpoint(text)
    if (parsed.origin !== this.#key.origin || parsed.treeSize !== c.treeSize)
      fail(`names another log or size (${parsed.origin}, ${parsed.treeSize})`)
    if (!same(parsed.rootHash, c.rootHash)) fail('has a root hash its signed note does not')
    if (!same(root, c.rootHash)) {
      fail(
        `does not match the tree of the stored events: one of the events since the previous checkpoint was changed${first ? ` (from ${describe(first)} on)` : ''}`,
      )
    }
    this.#checked++
    this.#sinceCheckpoint = undefined
  }

  #report(
    latest: StoredCheckpoint | null,
    size: number,
    pending: { count: number; oldestAt: number | null },
  ): VerifiedLog {
    const key = this.#key as AuditLogKey | undefined
    return {
      ok: true,
      origin: key?.origin ?? null,
      verifier_key: key ? verifierKey(key.origin, key.publicKey) : null,
      tree_size: size,
      root_hash: latest ? b64(latest.rootHash) : null,
      checkpoints: this.#checked,
      pruned: this.#pruned,
      pending: pending.count,
      oldest_pending_at:
        pending.oldestAt === null ? null : new Date(pending.oldestAt).toISOString(),
    }
  }
}
