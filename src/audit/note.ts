import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { CAError } from '../errors.js'

/*
 * C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures, and the checkpoint text
 * they carry (c2sp.org/tlog-checkpoint): the format of Go's golang.org/x/mod/sumdb/note, which
 * witnesses and tlog clients read.
 */

/** Signature type 0x01: Ed25519 (signed-note "Signature types"). */
const ED25519 = 0x01
const SIGNATURE_PREFIX = '\u2014 ' // em dash, space
// The SPKI DER of an Ed25519 public key is this prefix + the 32 raw bytes (RFC 8410 §4).
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

const invalid = (message: string) => new CAError('ERR_AUDIT_LOG_INVALID', message)

/** A key name: non-empty, no Unicode space, no plus (signed-note "Format"). */
export function isKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name)
}

/** key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4], big-endian. */
export function keyId(name: string, publicKey: Uint8Array): number {
  const digest = createHash('sha256')
    .update(name, 'utf8')
    .update(Buffer.from([0x0a, ED25519]))
    .update(publicKey)
    .digest()
  return digest.readUInt32BE(0)
}

/** The verifier key text of sumdb/note: `<name>+<hex key ID>+<base64(0x01 || public key)>`. */
export function verifierKey(name: string, publicKey: Uint8Array): string {
  const id = keyId(name, publicKey).toString(16).padStart(8, '0')
  const material = Buffer.concat([Buffer.from([ED25519]), publicKey]).toString('base64')
  return `${name}+${id}+${material}`
}

export interface NoteVerifier {
  readonly name: string
  readonly keyId: number
  readonly publicKey: Uint8Array
}

/** Parses a verifier key; the key ID must be the one the name and key give. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+=*)$/.exec(vkey.trim())
  if (!m) throw invalid('not a verifier key (name+keyid+base64)')
  const material = Buffer.from(m[3]!, 'base64')
  if (material.length !== 33 || material[0] !== ED25519)
    throw invalid('the verifier key is not an Ed25519 key')
  const publicKey = material.subarray(1)
  const id = keyId(m[1]!, publicKey)
  if (id !== parseInt(m[2]!, 16)) throw invalid('the verifier key ID does not match its key')
  return { name: m[1]!, keyId: id, publicKey }
}

export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: Buffer.concat([ED25519_SPKI_PREFIX, raw]),
    format: 'der',
    type: 'spki',
  })
}

/** The raw 32 bytes of an Ed25519 public key (of a private key: of its public half). */
export function rawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  const der = pub.export({ format: 'der', type: 'spki' })
  return der.subarray(der.length - 32)
}

/** Signs a note text (ending in a newline) as `name`: text, blank line, one signature line. */
export function signNote(text: string, name: string, privateKey: KeyObject): string {
  if (!text.endsWith('\n')) throw new TypeError('a note text ends with a newline')
  const publicKey = rawPublicKey(privateKey)
  const id = Buffer.alloc(4)
  id.writeUInt32BE(keyId(name, publicKey))
  const signature = sign(null, Buffer.from(text, 'utf8'), privateKey)
  const blob = Buffer.concat([id, signature]).toString('base64')
  return `${text}\n${SIGNATURE_PREFIX}${name} ${blob}\n`
}

/**
 * Opens a signed note: returns its text when a signature of `verifier` verifies. Signatures of
 * other keys are ignored; a failing one of this key refuses the note (signed-note "Signatures").
 */
export function openNote(note: string, verifier: NoteVerifier): string {
  // The text is separated from the signatures by the last empty line.
  const split = note.lastIndexOf('\n\n')
  if (split < 0 || !note.endsWith('\n')) throw invalid('not a signed note')
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw invalid('control characters in the note')
  const text = note.slice(0, split + 1)
  const lines = note.slice(split + 2, -1).split('\n')
  const key = ed25519PublicKey(verifier.publicKey)
  let verified = false
  for (const line of lines) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+=*)$/.exec(line)
    if (!m) throw invalid(`malformed signature line: ${JSON.stringify(line)}`)
    const blob = Buffer.from(m[2]!, 'base64')
    if (m[1] !== verifier.name || blob.length < 4 || blob.readUInt32BE(0) !== verifier.keyId)
      continue
    if (!verify(null, Buffer.from(text, 'utf8'), key, blob.subarray(4)))
      throw invalid(`the signature of ${verifier.name} does not verify`)
    verified = true
  }
  if (!verified) throw invalid(`the note has no signature of ${verifier.name}`)
  return text
}

export interface Checkpoint {
  readonly origin: string
  readonly treeSize: number
  readonly rootHash: Uint8Array
}

/** tlog-checkpoint note text: origin, tree size, base64 root hash, one per line. */
export function checkpointText(c: Checkpoint): string {
  return `${c.origin}\n${c.treeSize}\n${Buffer.from(c.rootHash).toString('base64')}\n`
}

/** Parses a checkpoint note text (extension lines are allowed and ignored). */
export function parseCheckpoint(text: string): Checkpoint {
  const lines = text.split('\n')
  const [origin, size, root] = lines
  if (
    lines.length < 4 ||
    !origin ||
    lines.at(-1) !== '' ||
    lines.slice(3, -1).some((l) => l === '')
  )
    throw invalid('a checkpoint has at least three non-empty lines')
  if (!/^(0|[1-9][0-9]*)$/.test(size!) || !Number.isSafeInteger(Number(size)))
    throw invalid(`bad checkpoint tree size ${JSON.stringify(size)}`)
  const rootHash = Buffer.from(root!, 'base64')
  if (rootHash.length !== 32 || rootHash.toString('base64') !== root)
    throw invalid('bad checkpoint root hash')
  return { origin: origin!, treeSize: Number(size), rootHash }
}
