import { X509Certificate } from 'node:crypto'
import { jwsAlgFor, keyTypeOf } from '../crypto/keys.js'
import { x5tS256 } from '../crypto/thumbprint.js'
import type { CertificateRecord } from '../db/types.js'
import { CAError } from '../errors.js'
import { verifyJwt } from '../tokens/jws.js'
import type { ExpiredRenewalProof } from './authority.js'
import {
  cloneSuspected,
  containClone,
  isSupersededNext,
  type GenerationDeps,
} from './generations.js'

/** A proof lives at most this long (CONTRACT: `exp` ≤ 5 minutes after `iat`). */
const MAX_PROOF_LIFETIME_S = 300
/** Clock skew tolerated on `iat` in the future. */
const SKEW_S = 60
const MAX_TOKEN_CHARS = 16_384
const JTI = /^[\x21-\x7e]{1,256}$/

/** Containment needs the same as the mTLS check (a retired generation's proof is a clone). */
export type ExpiredRenewalDeps = GenerationDeps

/** What an accepted proof authorises: a renewal of this certificate, spending this jti. */
export interface ProvenCertificate {
  readonly certificate: CertificateRecord
  readonly proof: ExpiredRenewalProof
}

const refuse = (why: string) => new CAError('ERR_PROOF_INVALID', `renewal after expiry: ${why}`)

/**
 * Renewal after expiry (CONTRACT "Lineages"): `Authorization: Bearer <JWT>` signed by the
 * expired certificate's key, which the JWT's `x5c` header carries (RFC 7515 §4.1.6). The
 * certificate must be ours (signed by one of our issuing CAs, known by serial and thumbprint),
 * the current generation of an active lineage, never revoked, and expired no longer ago than
 * its entry's `renew_after_expiry`. The caller spends the jti in the renewal's transaction.
 */
export async function verifyExpiredRenewal(
  authorization: string,
  peer: string | null,
  deps: ExpiredRenewalDeps,
): Promise<ProvenCertificate> {
  const m = /^Bearer +([A-Za-z0-9_.-]+)$/i.exec(authorization)
  if (!m || m[1]!.length > MAX_TOKEN_CHARS)
    throw refuse('send the proof as "Authorization: Bearer <JWT>"')
  const jwt = m[1]!
  const leaf = await ourCertificate(x5cLeaf(jwt), deps)
  const record = await deps.store.certificates.get(leaf.serialNumber.toLowerCase())
  if (!record || record.thumbprint !== x5tS256(leaf.raw) || record.kind !== 'workload')
    throw refuse('the x5c certificate is not known to this CA')
  const claims = checkProof(jwt, leaf, record, deps)
  await checkRenewable(record, peer, deps)
  return { certificate: record, proof: { jti: claims.jti, expiresAt: claims.exp * 1000 } }
}

/** The first certificate of the protected header's `x5c` (standard base64 DER). */
function x5cLeaf(jwt: string): X509Certificate {
  let header: { x5c?: unknown }
  try {
    header = JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString('utf8'))
  } catch {
    throw refuse('the JWT header is not JSON')
  }
  const first = Array.isArray(header?.x5c) ? header.x5c[0] : undefined
  if (typeof first !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(first))
    throw refuse('the JWT header has no x5c certificate')
  try {
    return new X509Certificate(Buffer.from(first, 'base64'))
  } catch {
    throw refuse('the x5c certificate cannot be parsed')
  }
}

/** Signed by one of our issuing CAs (the time is not checked: it is expired, by design). */
async function ourCertificate(
  leaf: X509Certificate,
  deps: ExpiredRenewalDeps,
): Promise<X509Certificate> {
  const issuers = (await deps.store.certificates.caCertificates())
    .filter((c) => c.kind === 'intermediate')
    .map((c) => new X509Certificate(c.der))
  if (!issuers.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey)))
    throw refuse('the x5c certificate was not issued by this CA')
  return leaf
}

function checkProof(
  jwt: string,
  leaf: X509Certificate,
  record: CertificateRecord,
  deps: ExpiredRenewalDeps,
): { jti: string; exp: number } {
  const keyType = keyTypeOf(leaf.publicKey)
  if (keyType === undefined) throw refuse('the certificate has a key type this CA does not take')
  const alg = jwsAlgFor(keyType)
  const now = deps.clock.now()
  const result = verifyJwt(jwt, [{ kid: undefined, alg, key: leaf.publicKey }], {
    algorithms: [alg],
    currentDate: now,
  })
  if (!result.ok) throw refuse(`the proof does not verify (${result.reason}; alg must be ${alg})`)
  const c = result.payload
  const audience = `${deps.config.tokens.issuer}/v1/renew`
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud]
  if (!aud.includes(audience)) throw refuse(`"aud" must be ${audience}`)
  if (c.sub !== record.spiffeId) throw refuse('"sub" must be the SPIFFE ID of the certificate')
  const nowS = Math.floor(now.getTime() / 1000)
  if (typeof c.iat !== 'number' || c.iat > nowS + SKEW_S) throw refuse('"iat" is missing or ahead')
  if (typeof c.exp !== 'number' || c.exp - c.iat > MAX_PROOF_LIFETIME_S)
    throw refuse('"exp" must be at most 5 minutes after "iat"')
  if (typeof c.jti !== 'string' || !JTI.test(c.jti)) throw refuse('"jti" is missing')
  return { jti: c.jti, exp: c.exp }
}

/** Only the current generation of an active lineage, never revoked, within the entry's grace. */
async function checkRenewable(
  record: CertificateRecord,
  peer: string | null,
  deps: ExpiredRenewalDeps,
): Promise<void> {
  const now = deps.clock.now().getTime()
  if (
    record.lineageState === 'retired' &&
    (record.status === 'valid' || isSupersededNext(record))
  ) {
    // A retired generation asking to renew is a clone signal, expired or not; the proof showed
    // its key, so a copy of the (public) certificate alone cannot raise the alarm.
    await containClone({ serial: record.serial, request: 'renew', peer, now }, deps)
    throw cloneSuspected(record)
  }
  if (record.status !== 'valid') throw refuse('the certificate was revoked')
  if (record.lineageState !== 'current')
    throw refuse('only the current generation of a lineage renews after expiry')
  const lineage = await deps.store.lineages.find(record.lineageId ?? '')
  if (lineage?.status !== 'active') throw refuse('the lineage was revoked')
  if (now < record.notAfter)
    throw new CAError(
      'ERR_BAD_REQUEST',
      'the certificate has not expired: renew over mTLS with it instead',
    )
  const entry = record.entryId === null ? undefined : await deps.store.entries.get(record.entryId)
  const graceMs = entry?.renewAfterExpiry?.ms
  if (graceMs === undefined) throw refuse('the entry does not allow renewal after expiry')
  if (now - record.notAfter > graceMs)
    throw refuse(`the certificate expired more than ${entry!.renewAfterExpiry!.text} ago`)
}
