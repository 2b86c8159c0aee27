import { createHash, hash } from 'node:crypto'

/*
 * Merkle Tree Hashes as RFC 9162 §2.1 defines them (the same as RFC 6962 §2.1), over SHA-256.
 * Indices and sizes are plain numbers and never go through 32-bit bit operations: a log of
 * hundreds of events per second passes 2^31 leaves in a few months.
 */

const LEAF_PREFIX = Buffer.from([0x00])
// One-shot crypto.hash over a reused buffer: a third cheaper than createHash per node, and
// the checkpointer and `audit verify` hash about two nodes per event.
const node = Buffer.alloc(65)

/** RFC 9162 §2.1.1: MTH({d}) = SHA-256(0x00 || d). */
export function leafHash(data: Uint8Array): Buffer {
  return hash('sha256', Buffer.concat([LEAF_PREFIX, data]), 'buffer')
}

/** RFC 9162 §2.1.1: an interior node, SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== 32 || right.length !== 32) throw new RangeError('node hashes are 32 bytes')
  node[0] = 0x01
  node.set(left, 1)
  node.set(right, 33)
  return hash('sha256', node, 'buffer')
}

/** RFC 9162 §2.1.1: the hash of an empty tree, SHA-256 of the empty string. */
export const EMPTY_TREE_ROOT = createHash('sha256').digest()

/** RFC 9162 §2.1.1's k: the largest power of two smaller than n (n > 1). */
export function splitPoint(n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

/** MTH of a power-of-two count of hashes (a complete subtree): hashed pairwise, level by level. */
export function perfectHash(hashes: readonly Uint8Array[]): Uint8Array {
  if (hashes.length === 0 || heightOf(hashes.length) < 0)
    throw new RangeError(`${hashes.length} hashes are not a complete subtree`)
  let level = hashes
  while (level.length > 1) {
    const up: Uint8Array[] = []
    for (let i = 0; i < level.length; i += 2) up.push(nodeHash(level[i]!, level[i + 1]!))
    level = up
  }
  return level[0]!
}

/** Height of a power of two, or -1 when n is not one. */
function heightOf(n: number): number {
  let h = 0
  for (let p = 1; p <= n; p *= 2, h++) if (p === n) return h
  return -1
}

/**
 * The hash of a complete subtree: the one of height `height` (2^height leaves) at position
 * `index` among the subtrees of that height, covering D[index·2^height : (index+1)·2^height].
 */
export type NodeSource = (height: number, index: number) => Uint8Array

/**
 * MTH(D[lo:hi]) (RFC 9162 §2.1.1), split as the RFC splits it, down to complete subtrees,
 * which `node` supplies (from tiles, or from leaf hashes in memory).
 */
export function rangeHash(lo: number, hi: number, node: NodeSource): Uint8Array {
  const size = hi - lo
  if (size <= 0) throw new RangeError(`empty range [${lo}, ${hi})`)
  const h = heightOf(size)
  if (h >= 0 && lo % size === 0) return node(h, lo / size)
  const k = splitPoint(size)
  return nodeHash(rangeHash(lo, lo + k, node), rangeHash(lo + k, hi, node))
}

/** The root of a tree of `size` leaves (RFC 9162 §2.1.1). */
export function treeHash(size: number, node: NodeSource): Uint8Array {
  return size === 0 ? EMPTY_TREE_ROOT : rangeHash(0, size, node)
}

/**
 * The ranges whose hashes make PATH(m, D[0:n]), the inclusion proof of leaf m in a tree of n
 * leaves (RFC 9162 §2.1.3.1), in proof order: the sibling nearest the leaf first.
 */
export function inclusionRanges(m: number, n: number): [number, number][] {
  if (!(m >= 0 && m < n)) throw new RangeError(`leaf ${m} is not in a tree of ${n}`)
  const path: [number, number][] = []
  let lo = 0
  let hi = n
  // Walk down from the root; each step adds the subtree on the other side of the split.
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo)
    if (m < lo + k) {
      path.push([lo + k, hi])
      hi = lo + k
    } else {
      path.push([lo, lo + k])
      lo = lo + k
    }
  }
  return path.reverse()
}

/** PATH(m, D[0:n]) (RFC 9162 §2.1.3.1) from complete-subtree hashes. */
export function inclusionProof(m: number, n: number, node: NodeSource): Uint8Array[] {
  return inclusionRanges(m, n).map(([lo, hi]) => rangeHash(lo, hi, node))
}

/** Recomputes the root from a leaf hash and its proof (RFC 9162 §2.1.3.2); undefined if malformed. */
export function rootFromInclusionProof(
  m: number,
  n: number,
  leaf: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array | undefined {
  if (!(m >= 0 && m < n)) return undefined
  let fn = m
  let sn = n - 1
  let r: Uint8Array = leaf
  for (const p of proof) {
    if (sn === 0) return undefined
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r)
      // Right-shift until fn is odd again, or zero (§2.1.3.2 step 3.1).
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2)
        sn = Math.floor(sn / 2)
      }
    } else {
      r = nodeHash(r, p)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  return sn === 0 ? r : undefined
}

/**
 * The right edge of a tree being built leaf by leaf: the roots of its complete subtrees,
 * largest first (the binary decomposition of its size). Enough to give the root at every size
 * while streaming through millions of leaves in O(log n) memory.
 */
export class Frontier {
  readonly #heights: number[] = []
  readonly #hashes: Uint8Array[] = []
  #size = 0

  get size(): number {
    return this.#size
  }

  push(leaf: Uint8Array): void {
    let hash = leaf
    let height = 0
    while (this.#heights.length > 0 && this.#heights.at(-1) === height) {
      this.#heights.pop()
      hash = nodeHash(this.#hashes.pop()!, hash)
      height++
    }
    this.#heights.push(height)
    this.#hashes.push(hash)
    this.#size++
  }

  /** MTH of the leaves pushed so far: the subtrees folded right to left, as §2.1.1 splits. */
  root(): Uint8Array {
    if (this.#hashes.length === 0) return EMPTY_TREE_ROOT
    let acc = this.#hashes.at(-1)!
    for (let i = this.#hashes.length - 2; i >= 0; i--) acc = nodeHash(this.#hashes[i]!, acc)
    return acc
  }
}
