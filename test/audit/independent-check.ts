import { createHash, createPublicKey, verify } from 'node:crypto'

/*
 * An independent checker of what certbound's audit log publishes, written from the specs and
 * sharing no code with src/audit: RFC 9162 §2.1.1 (hashes) and §2.1.3.2 (verifying an
 * inclusion proof), c2sp.org/signed-note (Ed25519 note signatures) and c2sp.org/tlog-checkpoint.
 */

const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}

/** RFC 9162 §2.1.1: the hash of a leaf. */
export const leafHashOf = (data: Uint8Array) => sha256(Buffer.from([0]), data)

/** RFC 9162 §2.1.3.2, step by step. */
export function inclusionVerifies(
  leafIndex: number,
  treeSize: number,
  hash: Buffer,
  inclusionPath: readonly Buffer[],
  rootHash: Buffer,
): boolean {
  // 1. leaf_index must be below tree_size.
  if (leafIndex >= treeSize) return false
  // 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
  let fn = BigInt(leafIndex)
  let sn = BigInt(treeSize - 1)
  let r = hash
  // 4. For each p in inclusion_path:
  for (const p of inclusionPath) {
    // a. If sn is 0, stop and fail.
    if (sn === 0n) return false
    // b. If LSB(fn) is set, or fn equals sn:
    if ((fn & 1n) === 1n || fn === sn) {
      r = sha256(Buffer.from([1]), p, r)
      // If LSB(fn) is not set, right-shift fn and sn equally until LSB(fn) is set or fn is 0.
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n
        sn >>= 1n
      }
    } else {
      r = sha256(Buffer.from([1]), r, p)
    }
    // c. Right-shift both fn and sn one time.
    fn >>= 1n
    sn >>= 1n
  }
  // 5. sn must be 0 and r the root hash.
  return sn === 0n && r.equals(rootHash)
}

/** RFC 9162 §2.1.1, MTH over all leaf hashes, by the definition (for small trees). */
export function mth(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return sha256()
  if (leaves.length === 1) return leaves[0]!
  let k = 1
  while (k * 2 < leaves.length) k *= 2
  return sha256(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)))
}

/** A verifier key `name+hex(key id)+base64(0x01 || key)`; the key ID is checked. */
export function readVerifierKey(vkey: string): { name: string; id: Buffer; key: Buffer } {
  const [name, idHex, material, ...rest] = vkey.trim().split('+')
  // base64 may hold '+': put the tail back.
  const b64 = [material, ...rest].join('+')
  const bytes = Buffer.from(b64, 'base64')
  if (!name || bytes.length !== 33 || bytes[0] !== 1) throw new Error('not an Ed25519 vkey')
  const key = bytes.subarray(1)
  const id = sha256(Buffer.from(name, 'utf8'), Buffer.from([0x0a, 0x01]), key).subarray(0, 4)
  if (id.toString('hex') !== idHex) throw new Error('vkey: key ID mismatch')
  return { name, id, key }
}

/**
 * Opens a signed note with one verifier key: the text if a signature line of that key
 * (name and key ID) verifies over the text, including its final newline; else throws.
 */
export function openSignedNote(note: string, vkey: string): string {
  const { name, id, key } = readVerifierKey(vkey)
  const cut = note.lastIndexOf('\n\n')
  if (cut < 0) throw new Error('no blank line before the signatures')
  const text = note.slice(0, cut + 1)
  const publicKey = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: key.toString('base64url') },
    format: 'jwk',
  })
  for (const line of note
    .slice(cut + 2)
    .split('\n')
    .filter(Boolean)) {
    const [dash, signer, b64] = line.split(' ')
    if (dash !== '\u2014' || signer !== name) continue
    const sig = Buffer.from(b64!, 'base64')
    if (!sig.subarray(0, 4).equals(id)) continue
    if (verify(null, Buffer.from(text, 'utf8'), publicKey, sig.subarray(4))) return text
    throw new Error('the signature does not verify')
  }
  throw new Error(`no signature by ${name}`)
}

/** tlog-checkpoint: origin, size and root hash lines. */
export function readCheckpoint(text: string): { origin: string; size: number; root: Buffer } {
  const [origin, size, root] = text.split('\n')
  return { origin: origin!, size: Number(size), root: Buffer.from(root!, 'base64') }
}
