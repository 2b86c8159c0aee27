import { createHash, createPrivateKey } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  Frontier,
  inclusionProof,
  leafHash,
  nodeHash,
  perfectHash,
  rootFromInclusionProof,
  treeHash,
  type NodeSource,
} from '../../src/audit/merkle.js'
import {
  checkpointText,
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  signNote,
  verifierKey,
} from '../../src/audit/note.js'
import { RecomputedTiles } from '../../src/audit/recomputed-tiles.js'
import { edgeTiles, parseTilePath, tilePath, TileSet } from '../../src/audit/tiles.js'
import { isCAError } from '../../src/errors.js'

const hex = (s: string) => Buffer.from(s, 'hex')

// The test vectors of RFC 6962's reference implementation (certificate-transparency, also
// used by Go's transparency-dev/merkle): 8 leaves and the root of every prefix of them.
const LEAVES = [
  '',
  '00',
  '10',
  '2021',
  '3031',
  '40414243',
  '5051525354555657',
  '606162636465666768696a6b6c6d6e6f',
].map(hex)
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
]

/** Complete subtrees straight from leaf hashes in memory (the definition, no tiles). */
function memorySource(leaves: readonly Uint8Array[]): NodeSource {
  const memo = new Map<string, Uint8Array>()
  const node: NodeSource = (height, index) => {
    if ((index + 1) * 2 ** height > leaves.length) throw new RangeError('beyond the leaves')
    if (height === 0) return leaves[index]!
    const key = `${height}/${index}`
    let h = memo.get(key)
    if (!h)
      memo.set(key, (h = nodeHash(node(height - 1, 2 * index), node(height - 1, 2 * index + 1))))
    return h
  }
  return node
}

const hashes = (n: number) =>
  Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)))

describe('RFC 9162 Merkle Tree Hashes', () => {
  it('gives the reference roots for every prefix of the 8 test leaves', () => {
    const leaves = LEAVES.map((d) => leafHash(d))
    const frontier = new Frontier()
    for (let n = 1; n <= 8; n++) {
      expect(Buffer.from(treeHash(n, memorySource(leaves))).toString('hex'), `size ${n}`).toBe(
        ROOTS[n - 1],
      )
      frontier.push(leaves[n - 1]!)
      expect(Buffer.from(frontier.root()).toString('hex')).toBe(ROOTS[n - 1])
    }
    expect(Buffer.from(perfectHash(leaves)).toString('hex')).toBe(ROOTS[7])
    expect(Buffer.from(treeHash(0, memorySource([]))).toString('hex')).toBe(
      createHash('sha256').digest('hex'),
    )
  })

  it('gives the reference inclusion proof of leaf 5 in the tree of 8, and of leaf 2 in 3', () => {
    const leaves = LEAVES.map((d) => leafHash(d))
    expect(
      inclusionProof(5, 8, memorySource(leaves)).map((h) => Buffer.from(h).toString('hex')),
    ).toEqual([
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ])
    expect(
      inclusionProof(2, 3, memorySource(leaves)).map((h) => Buffer.from(h).toString('hex')),
    ).toEqual([ROOTS[1]])
  })

  it('every proof of every leaf of trees of 1 to 70 leaves gives the root; a wrong index does not', () => {
    const all = hashes(70)
    for (let n = 1; n <= 70; n++) {
      const source = memorySource(all.slice(0, n))
      const root = Buffer.from(treeHash(n, source))
      for (let m = 0; m < n; m++) {
        const proof = inclusionProof(m, n, source)
        expect(Buffer.from(rootFromInclusionProof(m, n, all[m]!, proof)!).equals(root)).toBe(true)
        if (n > 1) {
          const other = (m + 1) % n
          const wrong = rootFromInclusionProof(other, n, all[m]!, proof)
          expect(wrong !== undefined && Buffer.from(wrong).equals(root)).toBe(false)
        }
      }
    }
  })
})

describe('tiles (c2sp.org/tlog-tiles)', () => {
  it('names tiles as the spec does, and parses only canonical paths', () => {
    expect(tilePath(0, 1234067)).toBe('tile/0/x001/x234/067')
    expect(tilePath(1, 0, 17)).toBe('tile/1/000.p/17')
    expect(tilePath(2, 999, 255)).toBe('tile/2/999.p/255')
    expect(parseTilePath('0/x001/x234/067')).toEqual({ level: 0, index: 1234067, width: 256 })
    expect(parseTilePath('1/000.p/17')).toEqual({ level: 1, index: 0, width: 17 })
    for (const bad of [
      '0/1234067',
      '0/x000/067',
      '00/000',
      '0/000.p/0',
      '0/000.p/256',
      '64/000',
      '0/x1/000',
      '0/000/',
    ])
      expect(parseTilePath(bad), bad).toBeUndefined()
  })

  it('a tree of 70,000 leaves has the partial tiles the spec lists', () => {
    // tlog-tiles: 273 full level-0 tiles, a partial one of 112, one full level-1 tile, a partial
    // one of 17, and a partial level-2 tile of 1.
    expect(edgeTiles(70_000)).toEqual([
      { level: 0, index: 273, width: 112 },
      { level: 1, index: 1, width: 17 },
      { level: 2, index: 0, width: 1 },
    ])
    expect(edgeTiles(256)).toEqual([{ level: 1, index: 0, width: 1 }])
    expect(edgeTiles(0)).toEqual([])
  })

  it('tiles grown in batches give the roots and proofs of the tree built from the leaves', () => {
    const all = hashes(66_000)
    const set = new TileSet()
    const rebuilt = new RecomputedTiles()
    const memory = memorySource(all)
    let size = 0
    for (const batch of [1, 254, 1, 1, 300, 65_000, 443]) {
      // Only the edge tiles are needed to append, as the store hands them over.
      const edge = new TileSet(edgeTiles(size).map((k) => set.get(k.level, k.index)!))
      for (const t of edge.append(size, all.slice(size, size + batch))) set.put(t)
      size += batch
      expect(
        Buffer.from(treeHash(size, set.node)).equals(Buffer.from(treeHash(size, memory))),
      ).toBe(true)
      for (const m of [0, size - 1, Math.floor(size / 3)]) {
        const hex = (p: Uint8Array[]) => p.map((h) => Buffer.from(h).toString('hex'))
        expect(hex(inclusionProof(m, size, set.node))).toEqual(hex(inclusionProof(m, size, memory)))
      }
    }
    // Tiles rebuilt while streaming are the stored ones.
    const full = all.flatMap((h) => rebuilt.push(h))
    for (const t of [...full, ...rebuilt.partial()])
      expect(Buffer.from(set.get(t.level, t.index)!.hashes).equals(Buffer.from(t.hashes))).toBe(
        true,
      )
    expect(full.filter((t) => t.level === 1)).toHaveLength(1)
  })
})

describe('signed notes (c2sp.org/signed-note) and checkpoints', () => {
  // golang.org/x/mod/sumdb/note's own example: Ed25519 signatures are deterministic, so the
  // note must come out byte for byte as Go's.
  const skey = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz'
  const vkey = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'
  const text =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
  const goNote = `${text}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`
  const seed = Buffer.from(skey.split('+').slice(4).join('+'), 'base64').subarray(1)
  const privateKey = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]),
    format: 'der',
    type: 'pkcs8',
  })

  it("signs as Go's sumdb/note does and reads Go's verifier key", () => {
    expect(signNote(text, 'PeterNeumann', privateKey)).toBe(goNote)
    const verifier = parseVerifierKey(vkey)
    expect(verifierKey(verifier.name, verifier.publicKey)).toBe(vkey)
    expect(openNote(goNote, verifier)).toBe(text)
  })

  it('refuses a changed text, a changed signature and a note without this key', () => {
    const verifier = parseVerifierKey(vkey)
    const refused = (note: string) => {
      try {
        openNote(note, verifier)
        return false
      } catch (e) {
        return isCAError(e, 'ERR_AUDIT_LOG_INVALID')
      }
    }
    expect(refused(goNote.replace('cryptography', 'cryptographY'))).toBe(true)
    expect(refused(goNote.replace('x08go/', 'x08go+'))).toBe(true)
    expect(
      refused(
        `${text}\n\u2014 SomeoneElse x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
      ),
    ).toBe(true)
    // A signature of an unknown key beside a good one is ignored.
    expect(openNote(`${goNote}\u2014 Other AAAAAAAA\n`, verifier)).toBe(text)
    expect(() => parseVerifierKey(vkey.replace('c74f20a3', 'c74f20a4'))).toThrow(/key ID/)
  })

  it('writes and reads the tlog-checkpoint text', () => {
    const c = { origin: 'example.com/log', treeSize: 8, rootHash: hex(ROOTS[7]!) }
    const t = checkpointText(c)
    expect(t).toBe('example.com/log\n8\nXcnaeacGWamtVZy3Ad7Zoqudgjqt' + 'L0lgz+Nw7/RgQyg=\n')
    expect(parseCheckpoint(t)).toEqual({ ...c, rootHash: expect.anything() })
    expect(Buffer.from(parseCheckpoint(`${t}ext\n`).rootHash).equals(c.rootHash)).toBe(true)
    for (const bad of ['example.com/log\n08\nXcna\n', '\n8\n' + t.split('\n')[2] + '\n', 'a\n1\n'])
      expect(() => parseCheckpoint(bad), bad).toThrow()
  })
})
