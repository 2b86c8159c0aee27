import { randomBytes, randomUUID } from 'node:crypto'
import type { Store } from '../../../src/db/port.js'
import type {
  EntryRecord,
  NewAccessToken,
  NewCertificate,
  NewRefreshToken,
} from '../../../src/db/types.js'

/**
 * Rows for the contract suite. Certificates here are rows, not real DER: the repositories
 * store bytes and never parse them.
 */
export const NOW = Date.now()
export const event = (action: string) => ({ actor: 'test', action })

let seq = 0
export const next = () => ++seq

export function entry(extra: Partial<EntryRecord> = {}): EntryRecord {
  const n = next()
  return {
    id: randomUUID(),
    spiffeId: `spiffe://example.org/contract/${n}-${randomBytes(3).toString('hex')}`,
    dnsNames: ['a.example.org'],
    maxTtl: { text: '2h', ms: 7_200_000 },
    scopes: ['read'],
    subjectCn: null,
    oidc: null,
    enabled: true,
    createdAt: NOW + n,
    updatedAt: NOW + n,
    renewAfterExpiry: null,
    ...extra,
  }
}

export function cert(entryRow: EntryRecord | null, extra: Partial<NewCertificate> = {}) {
  const serial = `4${randomBytes(15).toString('hex')}`
  return {
    serial,
    kind: 'workload',
    spiffeId: entryRow?.spiffeId ?? 'spiffe://example.org/admin',
    entryId: entryRow?.id ?? null,
    thumbprint: randomBytes(32).toString('base64url'),
    spkiSha256: randomBytes(32).toString('hex'),
    notBefore: NOW - 60_000,
    notAfter: NOW + 3_600_000,
    renewedFrom: null,
    der: new Uint8Array(randomBytes(64)),
    issuedAt: NOW,
    ...extra,
  } satisfies NewCertificate
}

/** An entry with one unused join token. */
export async function entryWithToken(store: Store, expiresAt = NOW + 60_000) {
  const e = await store.entries.create(entry(), event('entry.create'))
  const tokenId = `t-${next()}-${randomBytes(4).toString('hex')}`
  await store.entries.createJoinToken(
    { id: tokenId, tokenHash: 'h', entryId: e.id, expiresAt },
    NOW,
    event('join_token.create'),
  )
  return { entry: e, tokenId }
}

/** A stored workload certificate of a fresh entry: enrolled, generation 1 of a new lineage. */
export async function storedCert(store: Store, extra: Partial<NewCertificate> = {}) {
  const { entry: e, tokenId } = await entryWithToken(store)
  const c = cert(e, { lineageId: randomUUID(), generation: 1, ...extra })
  const refused = await store.certificates.commitEnrollment(
    { joinTokenId: tokenId },
    c,
    event('enroll'),
    NOW,
  )
  if (refused) throw new Error(`storedCert: ${refused}`)
  return { entry: e, cert: c }
}

/** A renewal of `parent`: the next generation of its lineage (a new key unless `extra` says). */
export function renewal(
  e: EntryRecord,
  parent: NewCertificate,
  extra: Partial<NewCertificate> = {},
) {
  return cert(e, {
    renewedFrom: parent.serial,
    lineageId: parent.lineageId ?? null,
    generation: (parent.generation ?? 1) + 1,
    ...extra,
  })
}

export function refreshRow(expiresAt = NOW + 3_600_000): NewRefreshToken {
  return { id: `r-${randomBytes(6).toString('hex')}`, hash: 'hash', issuedAt: NOW, expiresAt }
}

export function accessRow(c: NewCertificate, extra: Partial<NewAccessToken> = {}): NewAccessToken {
  return {
    jti: randomUUID(),
    certSerial: c.serial,
    spiffeId: c.spiffeId!,
    kid: 'kid-1',
    issuedAt: NOW,
    expiresAt: NOW + 300_000,
    sha256: randomBytes(32),
    ...extra,
  }
}

/** A token family bound to `c`, with its first refresh and access token. */
export async function family(store: Store, c: NewCertificate, now = NOW) {
  const id = randomUUID()
  const refresh = refreshRow()
  const access = accessRow(c, { issuedAt: now })
  const ok = await store.tokens.createFamily(
    {
      id,
      spiffeId: c.spiffeId!,
      entryId: c.entryId,
      certSerial: c.serial,
      scope: null,
      createdAt: now,
    },
    refresh,
    access,
    event('token.issue'),
  )
  return { id, refresh, access, ok }
}
