import type { AuditLogStore } from '../db/port.js'
import type { LoggedAuditEvent, StoredCheckpoint } from '../db/types.js'
import { CAError } from '../errors.js'
import { ISSUANCE_ACTIONS, leafData } from './event.js'
import { leafHash } from './merkle.js'
import { verifierKey } from './note.js'
import { ProofReader } from './proofs.js'

const PAGE = 1000
const b64 = (h: Uint8Array) => Buffer.from(h).toString('base64')

/** The first line of an export: the checkpoint every proof below is against. */
export interface ExportHeader {
  readonly origin: string
  readonly verifier_key: string
  readonly tree_size: number
  readonly root_hash: string
  /** The signed note (C2SP tlog-checkpoint), verbatim. */
  readonly checkpoint: string
}

/** One event with its inclusion proof (RFC 9162 §2.1.3) against the header's checkpoint. */
export interface ExportedEvent {
  readonly leaf_index: number
  /** The exact bytes hashed into the leaf (src/audit/event.ts), as UTF-8 text: the event. */
  readonly leaf_data: string
  /** base64 SHA-256(0x00 || leaf_data) */
  readonly leaf_hash: string
  readonly tree_size: number
  /** base64 hashes, the sibling nearest the leaf first. */
  readonly inclusion_proof: string[]
}

async function latest(
  store: AuditLogStore,
): Promise<{ header: ExportHeader; c: StoredCheckpoint }> {
  const [key, c] = await Promise.all([store.key(), store.latestCheckpoint()])
  if (!key || !c) throw new CAError('ERR_NOT_FOUND', 'the audit log has no checkpoint yet')
  return {
    c,
    header: {
      origin: key.origin,
      verifier_key: verifierKey(key.origin, key.publicKey),
      tree_size: c.treeSize,
      root_hash: b64(c.rootHash),
      checkpoint: c.note,
    },
  }
}

async function exported(
  e: LoggedAuditEvent,
  size: number,
  proofs: ProofReader,
): Promise<ExportedEvent> {
  const data = leafData(e)
  const proof = await proofs.inclusionProof(e.leafIndex!, size)
  return {
    leaf_index: e.leafIndex!,
    leaf_data: data.toString('utf8'),
    leaf_hash: b64(leafHash(data)),
    tree_size: size,
    inclusion_proof: proof.map(b64),
  }
}

/**
 * `certbound audit export`: the latest checkpoint, then every logged event from leaf `from`
 * on with its inclusion proof against it. Purged events (retention) are left out.
 */
export async function* exportAuditLog(
  store: AuditLogStore,
  from = 0,
): AsyncGenerator<ExportHeader | ExportedEvent> {
  const { header, c } = await latest(store)
  yield header
  const proofs = new ProofReader(store)
  for (let next = from; next < c.treeSize;) {
    const page = await store.eventsByLeaf(next, Math.min(PAGE, c.treeSize - next))
    const within = page.filter((e) => e.leafIndex! < c.treeSize)
    for (const e of within) yield await exported(e, c.treeSize, proofs)
    if (within.length === 0 || within.length < page.length) break
    next = within.at(-1)!.leafIndex! + 1
  }
}

export type IssuanceProof = ExportHeader & ExportedEvent & { readonly serial: string }

/** `certbound audit prove SERIAL`: the inclusion proof of a certificate's issuance event. */
export async function proveIssuance(store: AuditLogStore, serial: string): Promise<IssuanceProof> {
  const s = serial.toLowerCase()
  const [issued] = await store.eventsBySubject(s, ISSUANCE_ACTIONS)
  if (!issued)
    throw new CAError('ERR_NOT_FOUND', `no issuance of certificate ${s} is in the audit log`)
  const { header, c } = await latest(store)
  if (issued.leafIndex === null || issued.leafIndex >= c.treeSize)
    throw new CAError('ERR_NOT_FOUND', `the issuance of ${s} is not in a checkpoint yet`)
  return { serial: s, ...header, ...(await exported(issued, c.treeSize, new ProofReader(store))) }
}
