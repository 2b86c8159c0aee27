import type { AuditLogStore } from '../db/port.js'
import { inclusionRanges, rangeHash, type NodeSource } from './merkle.js'
import { tileOfNode, TILE_HEIGHT, TileSet, type TileKey } from './tiles.js'

const ZERO = new Uint8Array(32)
// Level-0 tiles kept in memory while an export walks the tree (8 KB each).
const MAX_CACHED_TILES = 4096

/**
 * Inclusion proofs (RFC 9162 §2.1.3.1) from the stored tiles. The tiles a proof needs are
 * found first (a dry run of the same recursion), read in one query, and kept: proofs of
 * consecutive leaves share almost all of them, so an export reads each tile about once.
 */
export class ProofReader {
  readonly #tiles = new TileSet()

  constructor(private readonly store: AuditLogStore) {}

  async inclusionProof(index: number, size: number): Promise<Uint8Array[]> {
    await this.#load(index, size)
    return inclusionRanges(index, size).map(([lo, hi]) => rangeHash(lo, hi, this.#tiles.node))
  }

  async #load(index: number, size: number): Promise<void> {
    const missing = new Map<string, TileKey>()
    const probe: NodeSource = (height, i) => {
      const at = tileOfNode(height, i)
      const tile = this.#tiles.get(at.level, at.index)
      if (!tile || tile.width < at.first + 2 ** (height - at.level * TILE_HEIGHT))
        missing.set(`${at.level}/${at.index}`, { level: at.level, index: at.index })
      return ZERO
    }
    for (const [lo, hi] of inclusionRanges(index, size)) rangeHash(lo, hi, probe)
    if (missing.size === 0) return
    if (this.#tiles.size > MAX_CACHED_TILES) this.#tiles.clear((t) => t.level > 0)
    for (const tile of await this.store.tiles([...missing.values()])) this.#tiles.put(tile)
  }
}
