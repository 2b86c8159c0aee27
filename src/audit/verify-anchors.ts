import type { KeyEncryptionKey } from '../crypto/sealing.js'
import type { AuditLogKey } from '../db/types.js'
import { openLogKey } from './log.js'
import { keyId, openNote, parseCheckpoint, type NoteVerifier } from './note.js'

/* What `audit verify` trusts, and what it answers. */

export interface VerifyOptions {
  /** The verifier key the operator keeps (from GET /v1/audit/key): the database's must be it. */
  readonly verifier?: NoteVerifier
  /** data_dir's key-encryption key: the stored public key must be the sealed private key's. */
  readonly kek?: KeyEncryptionKey
  /**
   * Checkpoints saved elsewhere (GET /v1/audit/checkpoint, a witness): each must be signed by
   * the log's key and be the root of the tree at its size — else the log was rolled back or
   * rewritten, even by someone holding the key.
   */
  readonly checkpoints?: readonly string[]
}

export interface VerifiedLog {
  readonly ok: true
  readonly origin: string | null
  readonly verifier_key: string | null
  readonly tree_size: number
  readonly root_hash: string | null
  readonly checkpoints: number
  /** Leaves whose events were purged (retention): their leaf hashes were taken as stored. */
  readonly pruned: number
  /** Committed events the checkpointer has not appended yet, and the oldest one's time. */
  readonly pending: number
  readonly oldest_pending_at: string | null
}

/** The first thing that does not verify, named by leaf index and event id where there is one. */
export interface FailedVerification {
  readonly ok: false
  readonly problem: string
  readonly leaf_index?: number
  readonly event_id?: number
}

export class Failure extends Error {
  constructor(readonly detail: Omit<FailedVerification, 'ok'>) {
    super(detail.problem)
  }
}

export const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))

/** The key checkpoints must be signed with: the operator's, or the one data_dir seals. */
export function anchorKey(key: AuditLogKey, options: VerifyOptions): NoteVerifier {
  const { verifier, kek } = options
  if (verifier) {
    if (verifier.name !== key.origin || !same(verifier.publicKey, key.publicKey))
      throw new Failure({ problem: 'the log key in the database is not the given verifier key' })
    return verifier
  }
  if (kek) {
    try {
      openLogKey(key, kek)
    } catch (e) {
      throw new Failure({
        problem: `the log key in the database is not the one sealed for this data_dir: ${(e as Error).message}`,
      })
    }
  }
  return { name: key.origin, keyId: keyId(key.origin, key.publicKey), publicKey: key.publicKey }
}

/** Checkpoints saved elsewhere, signature-checked, smallest first; none may exceed `size`. */
export function savedCheckpoints(
  notes: readonly string[],
  verifier: NoteVerifier,
  size: number,
): { treeSize: number; rootHash: Uint8Array }[] {
  const saved = notes.map((note, i) => {
    try {
      const c = parseCheckpoint(openNote(note, verifier))
      if (c.origin !== verifier.name) throw new Error(`it is of another log, ${c.origin}`)
      return c
    } catch (e) {
      throw new Failure({ problem: `saved checkpoint ${i + 1}: ${(e as Error).message}` })
    }
  })
  const beyond = saved.find((c) => c.treeSize > size)
  if (beyond)
    throw new Failure({
      problem: `the log has ${size} leaves, fewer than the ${beyond.treeSize} of a checkpoint it signed: it was rolled back or cut`,
      leaf_index: size,
    })
  return saved.sort((x, y) => x.treeSize - y.treeSize)
}
