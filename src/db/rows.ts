import type { AuditRecord, CertificateRecord, EntryRecord } from './types.js'

/** Row ↔ record mapping, shared by the repositories. */

export interface EntryRow {
  id: string
  spiffe_id: string
  dns_names: string
  max_ttl_ms: number | null
  max_ttl: string | null
  scopes: string | null
  enabled: number
  created_at: number
  updated_at: number
}

export function toEntry(r: EntryRow): EntryRecord {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    dnsNames: JSON.parse(r.dns_names) as string[],
    maxTtl: r.max_ttl_ms === null ? null : { text: r.max_ttl!, ms: r.max_ttl_ms },
    scopes: r.scopes === null ? null : (JSON.parse(r.scopes) as string[]),
    enabled: r.enabled === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
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
}

export function toCertificate(r: CertificateRow): CertificateRecord {
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
    der: new Uint8Array(r.der),
    issuedAt: r.issued_at,
  }
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

/** Opaque list cursors: the last row id, base64url so clients do not build them. */
export function encodeCursor(id: number): string {
  return Buffer.from(`c${id}`).toString('base64url')
}

export function decodeCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined || cursor === '') return 0
  const text = Buffer.from(cursor, 'base64url').toString()
  const m = /^c([0-9]{1,15})$/.exec(text)
  return m ? Number(m[1]) : undefined
}
