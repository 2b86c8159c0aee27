import type { AuditTile } from '../db/types.js'
import { nodeHash, type NodeSource } from './merkle.js'

/*
 * The tree's hashes stored as C2SP tlog-tiles (c2sp.org/tlog-tiles): a tile is 256
 * consecutive hashes of one level; level 0 holds the leaf hashes, level L the Merkle Tree
 * Hashes of the full tiles of level L-1 (subtrees of 256^L leaves). The n-th tile of level l
 * holds MTH(D[(n·256 + i)·256^l : (n·256 + i + 1)·256^l]) for i = 0…255. The rightmost tile of
 * a level is partial and grows until full. Any complete subtree — and so any root or inclusion
 * proof — is then at most 255 hashes away from stored ones, and storage is 32 bytes a leaf.
 */

export const TILE_WIDTH = 256
/** Tree levels a tile spans: 256 = 2^8. */
export const TILE_HEIGHT = 8
export const HASH_SIZE = 32

/** A tile: `width` hashes (256 when full, 1-255 for a level's rightmost one), concatenated. */
export type Tile = AuditTile

export interface TileKey {
  readonly level: number
  readonly index: number
}

const keyOf = (level: number, index: number) => `${level}/${index}`

/**
 * The partial tiles of a tree of `size` leaves, one per level that has one: at level l the
 * tile floor(size / 256^(l+1)) with floor(size / 256^l) mod 256 hashes (tlog-tiles "Partial
 * Tiles"). Appending leaves extends exactly these.
 */
export function edgeTiles(size: number): (TileKey & { width: number })[] {
  const edge: (TileKey & { width: number })[] = []
  for (let level = 0, span = 1; span <= size; level++, span *= TILE_WIDTH) {
    const width = Math.floor(size / span) % TILE_WIDTH
    if (width > 0) edge.push({ level, index: Math.floor(size / (span * TILE_WIDTH)), width })
  }
  return edge
}

/** The tile (and its first entry) holding the complete subtree of `height` at `index`. */
export function tileOfNode(height: number, index: number): TileKey & { first: number } {
  const level = Math.floor(height / TILE_HEIGHT)
  const entries = 2 ** (height - level * TILE_HEIGHT)
  const at = index * entries
  return { level, index: Math.floor(at / TILE_WIDTH), first: at % TILE_WIDTH }
}

/** tlog-tiles path of a tile: `tile/<L>/<N>[.p/<W>]`, N in 3-digit groups, all but the last with `x`. */
export function tilePath(level: number, index: number, width = TILE_WIDTH): string {
  const digits = String(index).padStart(3 * Math.ceil(String(index).length / 3), '0')
  const groups = digits.match(/.../g)!.map((g, i, all) => (i < all.length - 1 ? `x${g}` : g))
  return `tile/${level}/${groups.join('/')}${width < TILE_WIDTH ? `.p/${width}` : ''}`
}

/** Parses `<L>/<N>[.p/<W>]` (after `tile/`); undefined unless it is in canonical form. */
export function parseTilePath(rest: string): (TileKey & { width: number }) | undefined {
  const m = /^(0|[1-9][0-9]?)\/((?:x[0-9]{3}\/)*)([0-9]{3})(?:\.p\/([1-9][0-9]{0,2}))?$/.exec(rest)
  if (!m) return undefined
  const level = Number(m[1])
  const prefix = m[2]!.split('/').filter(Boolean)
  // No leading all-zero groups: every index has one path only.
  if (level > 63 || (prefix.length > 0 && prefix[0] === 'x000')) return undefined
  const index = Number([...prefix.map((g) => g.slice(1)), m[3]].join(''))
  const width = m[4] === undefined ? TILE_WIDTH : Number(m[4])
  if (!Number.isSafeInteger(index) || (m[4] !== undefined && width > 255)) return undefined
  return { level, index, width }
}

/**
 * Tiles in memory, as a NodeSource: the complete subtree of height h is 2^(h mod 8) consecutive
 * hashes of one tile of level floor(h / 8), hashed pairwise. Interior hashes are memoised, so
 * proofs for consecutive leaves (an export) hash each tile once.
 */
export class TileSet {
  readonly #tiles = new Map<string, Tile>()
  readonly #memo = new Map<string, Uint8Array>()
  readonly #buffers = new Map<string, Uint8Array>()

  constructor(tiles: Iterable<Tile> = []) {
    for (const t of tiles) this.put(t)
  }

  get(level: number, index: number): Tile | undefined {
    return this.#tiles.get(keyOf(level, index))
  }

  put(tile: Tile): void {
    this.#tiles.set(keyOf(tile.level, tile.index), tile)
  }

  /** Forgets tiles (and memoised hashes) to bound memory in long exports. */
  clear(keep: (t: Tile) => boolean = () => false): void {
    for (const [k, t] of this.#tiles) if (!keep(t)) this.#tiles.delete(k)
    this.#memo.clear()
    this.#buffers.clear()
  }

  get size(): number {
    return this.#tiles.size
  }

  readonly node: NodeSource = (height, index) => {
    const at = tileOfNode(height, index)
    const tile = this.get(at.level, at.index)
    const count = 2 ** (height - at.level * TILE_HEIGHT)
    if (!tile || tile.width < at.first + count)
      throw new MissingTileError(at.level, at.index, at.first + count)
    return this.#perfect(tile, at.first, count)
  }

  /** The hash of `count` (a power of two) entries of a tile from `first`. */
  #perfect(tile: Tile, first: number, count: number): Uint8Array {
    if (count === 1) return entry(tile, first)
    const key = `${tile.level}/${tile.index}/${first}/${count}`
    let hash = this.#memo.get(key)
    if (!hash) {
      const half = count / 2
      hash = nodeHash(this.#perfect(tile, first, half), this.#perfect(tile, first + half, half))
      this.#memo.set(key, hash)
    }
    return hash
  }

  /**
   * Appends leaf hashes to a tree of `size` leaves whose edge tiles are in this set; a tile
   * that fills up adds its hash to the level above. Returns the tiles that changed.
   */
  append(size: number, leaves: readonly Uint8Array[]): Tile[] {
    const changed = new Map<string, Tile>()
    let n = size
    for (const leaf of leaves) {
      let hash: Uint8Array = leaf
      // Each full tile's MTH becomes one hash of the level above: at most one carry per level.
      for (let level = 0, span = 1; ; level++, span *= TILE_WIDTH) {
        const index = Math.floor(n / (span * TILE_WIDTH))
        const tile = this.#extend(level, index, hash)
        changed.set(keyOf(level, index), tile)
        if (tile.width < TILE_WIDTH) break
        hash = this.#perfect(tile, 0, TILE_WIDTH)
      }
      n++
    }
    return [...changed.values()]
  }

  #extend(level: number, index: number, hash: Uint8Array): Tile {
    const key = keyOf(level, index)
    const old = this.get(level, index)
    // A growing tile gets a buffer of full width once, not a copy per appended hash.
    let buffer = this.#buffers.get(key)
    if (!buffer) {
      buffer = new Uint8Array(TILE_WIDTH * HASH_SIZE)
      if (old) buffer.set(old.hashes.subarray(0, old.width * HASH_SIZE))
      this.#buffers.set(key, buffer)
    }
    const width = (old?.width ?? 0) + 1
    buffer.set(hash, (width - 1) * HASH_SIZE)
    const tile = { level, index, width, hashes: buffer.subarray(0, width * HASH_SIZE) }
    this.put(tile)
    return tile
  }
}

/** Hash `i` of a tile. */
export function entry(tile: Tile, i: number): Uint8Array {
  return tile.hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE)
}

/** A hash was asked of a tile that is not loaded (or not that wide yet). */
export class MissingTileError extends Error {
  constructor(
    readonly level: number,
    readonly index: number,
    readonly width: number,
  ) {
    super(`tile ${tilePath(level, index)} is missing or narrower than ${width}`)
  }
}
