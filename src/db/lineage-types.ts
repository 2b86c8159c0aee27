import type { CertificateRecord } from './types.js'

/** Lineages and their generations (CONTRACT "Lineages (renewal history) and cloned credentials"). */

/** What a renewal commit needs beyond the certificate: the caller's address, the expiry grace. */
export interface RenewalContext {
  /** The peer address of the request (recorded as the parent's last use). */
  readonly peer?: string | null
  /** Renewal after expiry: the parent may be up to `graceMs` past notAfter; `jti` is spent. */
  readonly afterExpiry?: {
    readonly jti: string
    readonly proofExpiresAt: number
    readonly graceMs: number
  }
}

export interface LineageRecord {
  readonly id: string
  readonly spiffeId: string
  readonly entryId: string | null
  readonly status: 'active' | 'revoked'
  readonly currentSerial: string | null
  readonly nextSerial: string | null
  readonly createdAt: number
  readonly revokedAt: number | null
  readonly revokedReason: string | null
}

/** A lineage with every certificate of it, by generation then issue order. */
export interface LineageWithGenerations extends LineageRecord {
  readonly generations: readonly CertificateRecord[]
}

/** The state of a next generation after its first use: current now, or not (and why). */
export type PromotionResult = 'current' | 'retired' | 'revoked'

/** A retired generation asking for what only the current one may (LIFECYCLE "use of a retired generation"). */
export interface CloneSignal {
  readonly serial: string
  readonly request: 'renew' | 'token' | 'refresh'
  /** The peer address of the request. */
  readonly peer: string | null
  readonly now: number
  /** A refresh from another branch: the certificate the family was bound to. */
  readonly branchSerial?: string
}

export interface LineageRevocation {
  readonly lineageId: string
  /** false: the lineage was revoked already; nothing changed. */
  readonly changed: boolean
  readonly serials: readonly string[]
  readonly familiesRevoked: number
  readonly accessTokensRevoked: number
}
