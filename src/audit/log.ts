import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import type { KeyEncryptionKey } from '../crypto/sealing.js'
import type { Store } from '../db/port.js'
import type { AuditLogKey, LogAppender, StoredCheckpoint } from '../db/types.js'
import { CAError } from '../errors.js'
import { leafData } from './event.js'
import { leafHash, treeHash } from './merkle.js'
import { checkpointText, isKeyName, rawPublicKey, signNote, verifierKey } from './note.js'
import { edgeTiles, TileSet } from './tiles.js'

/** Events appended per transaction: a few milliseconds of hashing under the write lock. */
export const APPEND_BATCH = 1000
const SEAL_PURPOSE = 'audit-log-key'
const PRUNE_BATCH = 10_000

export interface AuditLogDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly kek: KeyEncryptionKey
}

/**
 * The checkpoint origin (= the note key name) of a new log: the URL prefix its tiles are
 * served under, without the scheme (c2sp.org/tlog-tiles "Parameters"), from tokens.issuer.
 * Fixed when the key is created: a later change of hostnames does not rename the log.
 */
export function originFor(config: Config): string {
  const origin = `${config.tokens.issuer.replace(/^https:\/\//, '').replace(/\/+$/, '')}/v1/audit`
  const name = origin.replace(/[\s+]/gu, '-')
  if (!isKeyName(name)) throw new TypeError(`cannot name a log after ${config.tokens.issuer}`)
  return name
}

/**
 * The audit log: every audit event a leaf of an append-only Merkle tree (RFC 9162), in the
 * order the checkpointer finds events committed, and a checkpoint of the tree signed after
 * each batch (C2SP tlog-checkpoint). The Ed25519 key is created once per database and sealed
 * under the key-encryption key; its verifier key is published at GET /v1/audit/key.
 */
export class AuditLog {
  #signer: Promise<{ key: AuditLogKey; privateKey: KeyObject }> | undefined

  constructor(private readonly deps: AuditLogDeps) {}

  /** The log's key; created (with its audit event) by the first process that asks. */
  async ensureKey(): Promise<AuditLogKey> {
    const { store, clock, kek, config } = this.deps
    const existing = await store.auditLog.key()
    if (existing) return existing
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const origin = originFor(config)
    const raw = rawPublicKey(publicKey)
    const der = privateKey.export({ format: 'der', type: 'pkcs8' })
    return store.auditLog.createKey(
      {
        origin,
        publicKey: raw,
        privateKeySealed: kek.seal(der, SEAL_PURPOSE),
        createdAt: clock.now().getTime(),
        prunedBelow: 0,
      },
      {
        actor: 'system',
        action: 'audit_log.create',
        subject: origin,
        details: { verifier_key: verifierKey(origin, raw) },
      },
    )
  }

  /** The private key, unsealed once; it must be the half of the published public key. */
  #loadSigner(): Promise<{ key: AuditLogKey; privateKey: KeyObject }> {
    this.#signer ??= (async () => {
      const key = await this.ensureKey()
      const privateKey = openLogKey(key, this.deps.kek)
      return { key, privateKey }
    })()
    this.#signer.catch(() => (this.#signer = undefined))
    return this.#signer
  }

  /** Appends one batch of committed events and signs its checkpoint; undefined: none waited. */
  async appendBatch(limit = APPEND_BATCH): Promise<StoredCheckpoint | undefined> {
    const { key, privateKey } = await this.#loadSigner()
    const now = this.deps.clock.now().getTime()
    const result = await this.deps.store.auditLog.append(limit, appender(key, privateKey, now))
    return result?.checkpoint
  }

  /**
   * audit.retention: purges event rows (and checkpoints) older than the retention, oldest
   * leaves first; their leaf hashes stay in the tiles, so the tree and the newer checkpoints
   * still verify. Returns the events purged.
   */
  async purge(now = this.deps.clock.now().getTime()): Promise<number> {
    const retention = this.deps.config.audit.retentionMs
    if (retention === undefined) return 0
    let purged = 0
    for (let round = 0; round < 100; round++) {
      const r = await this.deps.store.auditLog.prune(now - retention, PRUNE_BATCH, now)
      purged += r.events
      if (r.events < PRUNE_BATCH) break
    }
    return purged
  }

  /** Appends until no committed event waits (at most `maxBatches` batches). */
  async catchUp(maxBatches = Infinity): Promise<StoredCheckpoint | undefined> {
    let last: StoredCheckpoint | undefined
    for (let i = 0; i < maxBatches; i++) {
      const c = await this.appendBatch()
      if (!c) break
      last = c
    }
    return last
  }
}

/** Unseals the log's private key and checks it against the stored public key. */
export function openLogKey(key: AuditLogKey, kek: KeyEncryptionKey): KeyObject {
  const privateKey = createPrivateKey({
    key: kek.open(key.privateKeySealed, SEAL_PURPOSE),
    format: 'der',
    type: 'pkcs8',
  })
  if (!rawPublicKey(privateKey).equals(Buffer.from(key.publicKey)))
    throw new CAError(
      'ERR_AUDIT_LOG_INVALID',
      "the audit log's public key is not the half of its sealed private key",
    )
  return privateKey
}

/**
 * The tree step run inside the store's transaction: leaf hashes, grown tiles, the new root
 * and its signed checkpoint. It refuses to sign when the stored tiles no longer give the root
 * of the previous checkpoint: a log never signs a checkpoint inconsistent with one it signed.
 */
function appender(key: AuditLogKey, privateKey: KeyObject, now: number): LogAppender {
  return {
    edgeTiles: (size) => edgeTiles(size),
    extend({ treeSize, previous, events, tiles }) {
      const set = new TileSet(tiles)
      const expected = edgeTiles(treeSize)
      const intact =
        expected.every((t) => set.get(t.level, t.index)?.width === t.width) &&
        (previous === undefined ||
          Buffer.from(treeHash(treeSize, set.node)).equals(Buffer.from(previous.rootHash)))
      if (!intact)
        throw new CAError(
          'ERR_AUDIT_LOG_INVALID',
          `the stored tiles do not give the root of the checkpoint of ${treeSize} leaves: ` +
            'not signing on; run `certbound audit verify`',
        )
      const changed = set.append(
        treeSize,
        events.map((e) => leafHash(leafData(e))),
      )
      const size = treeSize + events.length
      const rootHash = treeHash(size, set.node)
      const text = checkpointText({ origin: key.origin, treeSize: size, rootHash })
      return {
        tiles: changed,
        checkpoint: {
          treeSize: size,
          rootHash,
          createdAt: now,
          note: signNote(text, key.origin, privateKey),
        },
      }
    },
  }
}
