import { CAError } from '../../errors.js'
import type {
  AuditRecord,
  CertificateRecord,
  CertificateState,
  EntryRecord,
  OidcRule,
} from '../types.js'

/** Row ↔ record mapping, shared by the repositories. */

export interface EntryRow {
  id: string
  spiffe_id: string
  dns_names: string
  max_ttl_ms: number | null
  max_ttl: string | null
  scopes: string | null
  subject_cn?: string | null
  oidc: string | null
  enabled: number
  created_at: number
  updated_at: number
  renew_after_expiry_ms: number | null
  renew_after_expiry: string | null
}

export function toEntry(r: EntryRow): EntryRecord {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    dnsNames: JSON.parse(r.dns_names) as string[],
    maxTtl: r.max_ttl_ms === null ? null : { text: r.max_ttl!, ms: r.max_ttl_ms },
    scopes: r.scopes === null ? null : (JSON.parse(r.scopes) as string[]),
    subjectCn: r.subject_cn ?? null,
    oidc: r.oidc === null ? null : (JSON.parse(r.oidc) as OidcRule),
    enabled: r.enabled === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    renewAfterExpiry:
      r.renew_after_expiry_ms === null
        ? null
        : { text: r.renew_after_expiry!, ms: r.renew_after_expiry_ms },
  }
}

export interface CertificateRow {
  id: number
  serial: string
  kind: CertificateRecord['kind']
  spiffe_id: string | null
  entry_id: string | null
  thumbprint: string
  spki_sha256: string
  not_before: number
  not_after: number
  status: CertificateRecord['status']
  revoked_at: number | null
  revocation_reason: string | null
  renewed_from: string | null
  der: Buffer
  issued_at: number
  issuer_key_id: string | null
  lineage_id: string | null
  generation: number | null
  lineage_state: CertificateRecord['lineageState']
  retired_at: number | null
  last_peer: string | null
}

/** Every column of `certificates` but `der`, in table order (the per-request status read). */
export const CERTIFICATE_STATE_COLUMNS =
  'id, serial, kind, spiffe_id, entry_id, thumbprint, spki_sha256, not_before, not_after, ' +
  'status, revoked_at, revocation_reason, renewed_from, issued_at, issuer_key_id, lineage_id, ' +
  'generation, lineage_state, retired_at, last_peer'

export function toCertificateState(r: Omit<CertificateRow, 'der'>): CertificateState {
  return {
    id: r.id,
    serial: r.serial,
    kind: r.kind,
    spiffeId: r.spiffe_id,
    entryId: r.entry_id,
    thumbprint: r.thumbprint,
    spkiSha256: r.spki_sha256,
    notBefore: r.not_before,
    notAfter: r.not_after,
    status: r.status,
    revokedAt: r.revoked_at,
    revocationReason: r.revocation_reason,
    renewedFrom: r.renewed_from,
    issuedAt: r.issued_at,
    issuerKeyId: r.issuer_key_id,
    lineageId: r.lineage_id,
    generation: r.generation,
    lineageState: r.lineage_state,
    retiredAt: r.retired_at,
    lastPeer: r.last_peer,
  }
}

export function toCertificate(r: CertificateRow): CertificateRecord {
  return { ...toCertificateState(r), der: new Uint8Array(r.der) }
}

export interface AuditRow {
  id: number
  at: number
  actor: string
  action: string
  subject: string | null
  details: string | null
}

export function toAudit(r: AuditRow): AuditRecord {
  return {
    id: r.id,
    at: r.at,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    details: r.details === null ? undefined : (JSON.parse(r.details) as Record<string, unknown>),
  }
}

/**
 * Opaque list cursors: the position of the last row returned, base64url so clients do not
 * build them. Anything this store did not issue is ERR_INVALID_CURSOR.
 */
export function encodeCursor(position: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(['c', ...position])).toString('base64url')
}

export function decodeCursor<T extends readonly (string | number)[]>(
  cursor: string | undefined,
  shape: { [K in keyof T]: 'string' | 'number' },
): T | undefined {
  if (cursor === undefined || cursor === '') return undefined
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString())
  } catch {
    value = undefined
  }
  const items = Array.isArray(value) ? (value as unknown[]) : []
  const ok =
    items.length === shape.length + 1 &&
    items[0] === 'c' &&
    shape.every((type, i) => typeof items[i + 1] === type && String(items[i + 1]).length <= 200)
  if (!ok) throw new CAError('ERR_INVALID_CURSOR', 'the cursor is not one this server issued')
  return items.slice(1) as unknown as T
}
