import { perfectHash } from './merkle.js'
import { HASH_SIZE, TILE_WIDTH, type Tile } from './tiles.js'

/**
 * Tiles rebuilt from leaf hashes while streaming through the tree, one growing tile per level
 * in memory (8 KB a level): each tile is handed out once, when it fills up, so that it can be
 * compared with the stored one and forgotten. `partial()` gives the rightmost ones at the end.
 */
export class RecomputedTiles {
  readonly #levels: { index: number; hashes: Uint8Array[] }[] = []

  /** Adds the next leaf hash; returns the tiles it completed (level 0 first). */
  push(leaf: Uint8Array): Tile[] {
    const done: Tile[] = []
    let hash = leaf
    for (let level = 0; ; level++) {
      const growing = (this.#levels[level] ??= { index: 0, hashes: [] })
      growing.hashes.push(hash)
      if (growing.hashes.length < TILE_WIDTH) break
      const tile = toTile(level, growing.index, growing.hashes)
      done.push(tile)
      hash = perfectHash(growing.hashes) // MTH of the full tile's 256 hashes
      this.#levels[level] = { index: growing.index + 1, hashes: [] }
    }
    return done
  }

  /** The partial tiles of the tree so far, one per level that has one. */
  partial(): Tile[] {
    return this.#levels.flatMap((l, level) =>
      l.hashes.length > 0 ? [toTile(level, l.index, l.hashes)] : [],
    )
  }
}

function toTile(level: number, index: number, hashes: readonly Uint8Array[]): Tile {
  const bytes = new Uint8Array(hashes.length * HASH_SIZE)
  hashes.forEach((h, i) => bytes.set(h, i * HASH_SIZE))
  return { level, index, width: hashes.length, hashes: bytes }
}
