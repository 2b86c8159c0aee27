/** Records as the repositories hand them to the domain: times are epoch milliseconds. */

export interface TtlCap {
  readonly text: string
  readonly ms: number
}

export interface EntryRecord {
  readonly id: string
  readonly spiffeId: string
  readonly dnsNames: readonly string[]
  /** The cap on certificate lifetimes: as the admin wrote it, and in milliseconds. */
  readonly maxTtl: TtlCap | null
  /** OAuth scopes the entry's workloads may ask for; null = any well-formed scope. */
  readonly scopes: readonly string[] | null
  readonly enabled: boolean
  readonly createdAt: number
  readonly updatedAt: number
}

export type CertificateKind = 'workload' | 'admin' | 'server'
export type StoredStatus = 'valid' | 'revoked'

export interface NewCertificate {
  readonly serial: string
  readonly kind: CertificateKind
  readonly spiffeId: string | null
  readonly entryId: string | null
  readonly thumbprint: string
  readonly spkiSha256: string
  readonly notBefore: number
  readonly notAfter: number
  readonly renewedFrom: string | null
  readonly der: Uint8Array
  readonly issuedAt: number
}

export interface CertificateRecord extends NewCertificate {
  readonly id: number
  readonly status: StoredStatus
  readonly revokedAt: number | null
  readonly revocationReason: string | null
}

export interface AuditInput {
  readonly actor: string
  readonly action: string
  readonly subject?: string | null
  readonly details?: Readonly<Record<string, unknown>>
}

export interface AuditRecord extends AuditInput {
  readonly id: number
  readonly at: number
}

export interface Page<T> {
  readonly items: readonly T[]
  readonly nextCursor: string | null
}

export interface CaCertificateRecord {
  readonly kind: 'root' | 'intermediate'
  readonly serial: string
  readonly der: Uint8Array
  readonly keyFile: string
  readonly notBefore: number
  readonly notAfter: number
}

export interface RevocationResult {
  /** false when the certificate was already revoked (the first reason is kept). */
  readonly changed: boolean
  /** Every serial revoked by this call (more than one for keyCompromise). */
  readonly serials: readonly string[]
  readonly familiesRevoked: number
  readonly accessTokensRevoked: number
}

export interface RevokedEntry {
  readonly serial: string
  readonly revokedAt: number
  readonly reason: string
}

/** Why a commit changed nothing: its preconditions no longer held when the transaction ran. */
export type CommitRefusalReason =
  'join_token_spent' | 'entry_disabled' | 'key_compromised' | 'parent_not_valid'
