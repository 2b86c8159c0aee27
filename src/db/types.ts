/** Records as the repositories hand them to the domain: times are epoch milliseconds. */

export type * from './lineage-types.js'

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
  /** The subject CN of its certificates; null or absent: the SPIFFE ID's path. */
  readonly subjectCn?: string | null
  /** Enrolment by an OIDC identity token that satisfies this rule; null = join tokens only. */
  readonly oidc: OidcRule | null
  readonly enabled: boolean
  readonly createdAt: number
  readonly updatedAt: number
  /** How long after notAfter the current generation may still renew (null or absent: never). */
  readonly renewAfterExpiry?: TtlCap | null
}

/** An entry's rule for enrolment by OIDC identity token (CONTRACT "Enrolment by an OIDC …"). */
export interface OidcRule {
  /** The issuer's name in `federation.oidc_issuers`. */
  readonly issuer: string
  /** Claim name (or JSON Pointer) → exact value or `*` glob; every one must match. */
  readonly claims: Readonly<Record<string, string>>
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
  /** Key id (hex SKI) of the CA that signed it; absent only in rows written before v6. */
  readonly issuerKeyId?: string | null
  /** Workload certificates: the lineage (an enrolment starts one) and the generation in it. */
  readonly lineageId?: string | null
  readonly generation?: number | null
}

/**
 * A certificate's place in its lineage (LIFECYCLE "Generation"): `next` issued by a renewal and
 * not used yet, `current` the one in use, `retired` superseded by the first use of the next one
 * (or, revoked `superseded`, a next one replaced by a later renewal).
 */
export type GenerationState = 'current' | 'next' | 'retired'

/** A certificate's row without its bytes: what a per-request status check needs. */
export type CertificateState = Omit<CertificateRecord, 'der'>

export interface CertificateRecord extends NewCertificate {
  readonly id: number
  readonly status: StoredStatus
  readonly revokedAt: number | null
  readonly revocationReason: string | null
  readonly lineageId: string | null
  readonly generation: number | null
  readonly lineageState: GenerationState | null
  readonly retiredAt: number | null
  /** The peer address of the certificate's last recorded use (enrolment, renewal, token). */
  readonly lastPeer: string | null
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
  /** Relative to data_dir; the CA keys are files that `init` wrote (CONTRACT "Files"). */
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
  | 'join_token_spent'
  | 'oidc_token_spent'
  | 'entry_disabled'
  | 'key_compromised'
  | 'parent_not_valid'
  /** The public key is certified for another SPIFFE ID (LIFECYCLE invariant 12). */
  | 'key_other_identity'
  | 'lineage_revoked'
  /** The parent was retired when the renewal committed: the lineage was contained with it. */
  | 'clone_suspected'
  /** Renewal after expiry: the proof's jti was used already. */
  | 'proof_replayed'

/** What an enrolment spends, in its own transaction: a join token, or one OIDC token's use. */
export type EnrollmentCredential =
  { readonly joinTokenId: string } | { readonly oidcToken: OidcTokenUse }

/** One use of an OIDC identity token: each token enrols at most once. */
export interface OidcTokenUse {
  /** SHA-256 (hex) of the token's signed `header.payload`: the replay key, never the token. */
  readonly tokenHash: string
  /** The issuer's name in `federation.oidc_issuers`. */
  readonly issuer: string
  /** A replay is refused until then (the token's `exp`, plus the clock tolerance). */
  readonly expiresAt: number
}

// --- entries ---------------------------------------------------------------------------------

export interface EntryPatch {
  readonly enabled?: boolean
  readonly dnsNames?: readonly string[]
  readonly maxTtl?: TtlCap | null
  readonly scopes?: readonly string[] | null
  readonly subjectCn?: string | null
  readonly renewAfterExpiry?: TtlCap | null
  readonly oidc?: OidcRule | null
}

export interface JoinTokenInput {
  readonly id: string
  readonly tokenHash: string
  readonly entryId: string
  readonly expiresAt: number
}

export interface FoundJoinToken {
  readonly id: string
  readonly tokenHash: string
  readonly entry: EntryRecord
}

// --- certificates ----------------------------------------------------------------------------

export type ListStatus = 'valid' | 'revoked' | 'expired'

export interface CertificateQuery {
  readonly spiffeId?: string
  readonly lineageId?: string
  readonly status?: ListStatus
  /** Opaque: a `nextCursor` this store returned; anything else is ERR_INVALID_CURSOR. */
  readonly cursor?: string
  readonly limit: number
  readonly now: number
}

// --- CRLs ------------------------------------------------------------------------------------

/** What a CRL is built from, read in one transaction with the CRL number it will carry. */
export interface CrlSnapshot {
  readonly crlNumber: bigint
  /** The revocation revision this list reflects (bumped by every revocation). */
  readonly revision: number
  readonly revoked: readonly RevokedEntry[]
}

export interface StoredCrl {
  readonly issuerKeyId: string
  readonly crlNumber: bigint
  readonly revision: number
  readonly thisUpdate: number
  readonly nextUpdate: number
  readonly der: Uint8Array
}

// --- tokens ----------------------------------------------------------------------------------

export interface FamilyRecord {
  readonly id: string
  readonly spiffeId: string
  readonly entryId: string | null
  readonly certSerial: string
  readonly scope: string | null
  readonly status: 'active' | 'revoked'
  readonly revokedReason: string | null
  readonly createdAt: number
  /** The lineage it follows: that of the certificate it is bound to now. */
  readonly lineageId?: string | null
}

export type NewFamily = Omit<FamilyRecord, 'status' | 'revokedReason' | 'lineageId'> & {
  /** The peer address of the request (recorded as the certificate's last use). */
  readonly peer?: string | null
}

export interface NewRefreshToken {
  readonly id: string
  readonly hash: string
  readonly issuedAt: number
  readonly expiresAt: number
}

export interface NewAccessToken {
  readonly jti: string
  readonly certSerial: string
  readonly spiffeId: string
  readonly kid: string
  readonly issuedAt: number
  readonly expiresAt: number
  /** SHA-256 of the signed token, for introspection without re-verifying the signature. */
  readonly sha256: Uint8Array
}

export interface RefreshTokenState {
  readonly id: string
  readonly hash: string
  readonly issuedAt: number
  readonly expiresAt: number
  readonly usedAt: number | null
  readonly family: FamilyRecord
}

/** An access token as introspection and revocation see it, with its certificate's state. */
export interface AccessTokenState {
  readonly jti: string
  readonly familyId: string | null
  readonly certSerial: string
  readonly spiffeId: string
  readonly kid: string
  readonly expiresAt: number
  readonly revokedAt: number | null
  /** SHA-256 of the token as issued; null for tokens issued before it was recorded. */
  readonly sha256: Uint8Array | null
  readonly familyStatus: 'active' | 'revoked' | null
  readonly certStatus: 'valid' | 'revoked'
  readonly certNotAfter: number
}

export interface RefreshCommitInput {
  readonly familyId: string
  readonly oldRefreshId: string
  readonly certSerial: string
  readonly refresh: NewRefreshToken
  readonly access: NewAccessToken
  readonly event: AuditInput
  readonly reuseEvent: AuditInput
  readonly peer?: string | null
}

export type RefreshCommit = 'ok' | 'reused' | 'family_inactive'

// --- token-signing keys ----------------------------------------------------------------------

export interface SigningKeyRecord {
  readonly kid: string
  readonly alg: string
  readonly publicJwk: Record<string, unknown>
  /** The private key, sealed under the key-encryption key (AES-256-GCM). */
  readonly privateKeySealed: Uint8Array | null
  /** A key of an older data_dir still in its file (imported and sealed at start). */
  readonly legacyKeyFile?: string | null
  readonly createdAt: number
  readonly publishAt: number
  readonly activateAt: number
  readonly retireAt: number | null
  readonly withdrawAt: number | null
}

export interface KeyRetirement {
  readonly kid: string
  readonly retireAt: number
  readonly withdrawAt: number
}

// --- the server's own TLS credential ---------------------------------------------------------

/** The server's TLS certificate and key, one unit: written together, loaded as a checked pair. */
export interface ServerCredentialRecord {
  /** The server.hostnames the certificate names, normalised (several replicas share it). */
  readonly hostnames: string
  readonly serial: string
  /** Leaf + issuing CA, PEM. */
  readonly chainPem: string
  /** The private key PEM, sealed under the key-encryption key. */
  readonly keySealed: Uint8Array
  readonly notAfter: number
  readonly createdAt: number
}

// --- CAs, rotation, OCSP (v6) ----------------------------------------------------------------

/** A CA certificate by its key id, with where its private key is (if this server holds it). */
export interface IssuingCaRecord {
  /** Lowercase hex of the subject key identifier. */
  readonly keyId: string
  readonly kind: 'root' | 'intermediate'
  readonly serial: string
  readonly der: Uint8Array
  readonly parentKeyId: string | null
  /** init's keys: a file relative to data_dir. */
  readonly keyFile: string | null
  /** A rotation's keys: sealed under the key-encryption key. */
  readonly keySealed: Uint8Array | null
  readonly notBefore: number
  readonly notAfter: number
  /** When it became the issuer of new certificates; the highest is current. */
  readonly activatedAt: number | null
  readonly revokedAt: number | null
  readonly revocationReason: string | null
  readonly createdAt: number
}

/** An issuing CA key waiting for its certificate from an offline root. */
export interface PendingIssuer {
  readonly keyId: string
  readonly keySealed: Uint8Array
  readonly csr: Uint8Array
  readonly createdAt: number
}

/** A delegated OCSP responder certificate and its sealed key. */
export interface OcspSignerRecord {
  readonly serial: string
  readonly issuerKeyId: string
  readonly der: Uint8Array
  readonly keySealed: Uint8Array
  readonly notBefore: number
  readonly notAfter: number
  readonly createdAt: number
}

/** A signed OCSP response without a nonce, with the status it states. */
export interface StoredOcspResponse {
  readonly issuerKeyId: string
  readonly serial: string
  readonly status: 'good' | 'revoked'
  readonly revokedAt: number | null
  readonly thisUpdate: number
  readonly nextUpdate: number
  readonly der: Uint8Array
}

/** What an OCSP answer depends on, read in one statement: the certificate now, the stored response. */
export interface OcspLookup {
  readonly certificate:
    | {
        readonly status: 'valid' | 'revoked'
        readonly revokedAt: number | null
        readonly revocationReason: string | null
        readonly notAfter: number
      }
    | undefined
  readonly response: StoredOcspResponse | undefined
}

/** A peer's failed authentications in its current window (`limits.*`). */
export interface AuthFailureWindow {
  readonly failures: number
  /** Epoch ms of the first failure of the window. */
  readonly windowStart: number
}

// --- the audit log as a Merkle tree (src/audit) -----------------------------------------------

/** An audit event as stored: `details` is its JSON text, from which the leaf data is made. */
export interface RawAuditEvent {
  readonly id: number
  readonly at: number
  readonly actor: string
  readonly action: string
  readonly subject: string | null
  readonly details: string | null
}

export interface LoggedAuditEvent extends RawAuditEvent {
  /** Its place in the tree; null until the checkpointer has appended it. */
  readonly leafIndex: number | null
}

/** The log's identity: its checkpoint origin (= note key name) and Ed25519 key. */
export interface AuditLogKey {
  readonly origin: string
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array
  /** The PKCS#8 private key, sealed under the key-encryption key. */
  readonly privateKeySealed: Uint8Array
  readonly createdAt: number
  /** Events below this leaf index may have been purged; their leaf hashes stay. */
  readonly prunedBelow: number
}

/** A C2SP tlog-tiles tile as stored: `width` hashes of 32 bytes. */
export interface AuditTile {
  readonly level: number
  readonly index: number
  readonly width: number
  readonly hashes: Uint8Array
}

export interface StoredCheckpoint {
  readonly treeSize: number
  readonly rootHash: Uint8Array
  readonly createdAt: number
  /** The signed note (C2SP tlog-checkpoint), as served. */
  readonly note: string
}

/** What the store hands the appender inside the checkpointer's transaction. */
export interface LogAppendInput {
  /** Leaves in the tree now (the latest checkpoint's size). */
  readonly treeSize: number
  readonly previous: StoredCheckpoint | undefined
  /** The events to append, in the order they become leaves treeSize, treeSize + 1, … */
  readonly events: readonly RawAuditEvent[]
  /** The tiles `edgeTiles(treeSize)` asked for, as stored. */
  readonly tiles: readonly AuditTile[]
}

export interface LogAppendResult {
  /** Tiles to store (new or grown). */
  readonly tiles: readonly AuditTile[]
  readonly checkpoint: StoredCheckpoint
}

/**
 * The tree logic the store calls inside its transaction. Both methods are pure computation
 * (hashing, signing: no I/O), so the transaction may run them again.
 */
export interface LogAppender {
  edgeTiles(treeSize: number): readonly { level: number; index: number }[]
  extend(input: LogAppendInput): LogAppendResult
}
