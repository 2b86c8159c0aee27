import type {
  AccessTokenState,
  AuditInput,
  AuditRecord,
  CaCertificateRecord,
  CertificateQuery,
  CertificateRecord,
  CommitRefusalReason,
  CrlSnapshot,
  EntryPatch,
  EntryRecord,
  FamilyRecord,
  FoundJoinToken,
  JoinTokenInput,
  KeyRetirement,
  NewAccessToken,
  NewCertificate,
  NewFamily,
  NewRefreshToken,
  Page,
  RefreshCommit,
  RefreshCommitInput,
  RefreshTokenState,
  RevocationResult,
  ServerCredentialRecord,
  SigningKeyRecord,
  StoredCrl,
} from './types.js'

/*
 * The storage port. The domain (src/ca, src/tokens) depends on these interfaces alone; every
 * backend implements all of them and passes the backend contract suite (test/db/contract).
 * Rules every method keeps:
 * - One state-changing method = one transaction: the change, its conditional re-checks and its
 *   audit event commit together or not at all (LIFECYCLE invariant 7).
 * - Times are epoch milliseconds; the caller passes "now" (the domain owns the clock).
 * - Engine errors surface only as CAError storage codes (ERR_STORAGE_CONFLICT,
 *   ERR_STORAGE_UNAVAILABLE, ERR_STORAGE_FULL); a bad list cursor is ERR_INVALID_CURSOR.
 * - Cursors are opaque strings.
 */

export interface AuditStore {
  /** Records an event on its own (refusals: nothing else changes). */
  record(at: number, event: AuditInput): Promise<void>
  list(filter?: { subject?: string; action?: string; limit?: number }): Promise<AuditRecord[]>
}

export interface EntryStore {
  /** ERR_STORAGE_CONFLICT when the SPIFFE ID already has an entry. */
  create(entry: EntryRecord, event: AuditInput): Promise<EntryRecord>
  get(id: string): Promise<EntryRecord | undefined>
  getBySpiffeId(spiffeId: string): Promise<EntryRecord | undefined>
  list(q: { cursor?: string; limit: number }): Promise<Page<EntryRecord>>
  /** Applies a patch; disabling also revokes the entry's token families. Undefined: unknown. */
  update(
    id: string,
    patch: EntryPatch,
    now: number,
    event: AuditInput,
  ): Promise<EntryRecord | undefined>
  createJoinToken(t: JoinTokenInput, now: number, event: AuditInput): Promise<void>
  /** A join token by its lookup id, with its entry, if unused and unexpired at `now`. */
  findJoinToken(id: string, now: number): Promise<FoundJoinToken | undefined>
}

export interface CertificateStore {
  get(serial: string): Promise<CertificateRecord | undefined>
  list(q: CertificateQuery): Promise<Page<CertificateRecord>>
  isKeyCompromised(spkiSha256: string): Promise<boolean>
  /** Records a certificate the CA issued for itself (admin credential). */
  insert(c: NewCertificate, event: AuditInput): Promise<void>
  /**
   * Enrolment: spends the join token only if still unused and unexpired at `now` (of N racing
   * redemptions exactly one commits), re-checks the entry and the key, stores the certificate.
   */
  commitEnrollment(
    joinTokenId: string,
    c: NewCertificate,
    event: AuditInput,
    now: number,
  ): Promise<CommitRefusalReason | undefined>
  /** Renewal: the parent (`c.renewedFrom`) must still be valid at `now`. */
  commitRenewal(
    c: NewCertificate,
    event: AuditInput,
    now: number,
  ): Promise<CommitRefusalReason | undefined>
  /**
   * Revokes and cascades: with keyCompromise every certificate of that key whatever its state,
   * everything renewed from any of them, and the key is refused from then on; every token family
   * bound to a revoked certificate and every access token issued to one. Undefined: unknown serial.
   */
  revoke(
    serial: string,
    reason: string,
    now: number,
    actor: string,
  ): Promise<RevocationResult | undefined>
  /** True when `serial` is `ancestor` or was renewed from it, directly or further down. */
  isSelfOrDescendant(serial: string, ancestor: string): Promise<boolean>
  /** Records a CA certificate once (false: it was recorded already, by this or another process). */
  saveCaCertificate(c: CaCertificateRecord, now: number, event: AuditInput): Promise<boolean>
  caCertificates(): Promise<CaCertificateRecord[]>
}

/** The signed CRL, built once per change and served by every process from here. */
export interface CrlStore {
  /**
   * Allocates the next CRL number and reads the revoked, unexpired certificates in one
   * transaction, so a higher number never reflects fewer revocations.
   */
  snapshot(now: number): Promise<CrlSnapshot>
  /** Stores a signed CRL; the one with the highest number is current. */
  save(crl: StoredCrl): Promise<void>
  /** The current CRL of an issuer (if any), and the revision every CRL must reflect now. */
  current(issuerKeyId: string): Promise<{ crl: StoredCrl | undefined; revision: number }>
}

export interface TokenStore {
  /** client_credentials: a new family, committed only if the certificate is still valid. */
  createFamily(
    family: NewFamily,
    refresh: NewRefreshToken,
    access: NewAccessToken,
    event: AuditInput,
  ): Promise<boolean>
  findRefreshToken(id: string): Promise<RefreshTokenState | undefined>
  /**
   * Refresh: spends the old refresh token with a conditional update; if it was already spent
   * the family is revoked (suspected theft) in the same transaction.
   */
  commitRefresh(p: RefreshCommitInput): Promise<RefreshCommit>
  revokeFamily(familyId: string, reason: string, now: number, event: AuditInput): Promise<boolean>
  findAccessToken(jti: string): Promise<AccessTokenState | undefined>
  revokeAccessToken(jti: string, now: number, event: AuditInput): Promise<boolean>
  getFamily(id: string): Promise<FamilyRecord | undefined>
  purgeExpired(now: number): Promise<{ accessTokens: number; refreshTokens: number }>
}

export interface SigningKeyStore {
  list(): Promise<SigningKeyRecord[]>
  /**
   * Adds a key and schedules the end of the ones it replaces — only if the newest key is still
   * `expectedNewest` (null: there is none), so N processes deciding at once add one key.
   */
  rotate(
    key: SigningKeyRecord,
    retire: readonly KeyRetirement[],
    expectedNewest: string | null,
    now: number,
    event: AuditInput,
  ): Promise<boolean>
  /** Moves a key of an older data_dir from its file into the database (upgrade in place). */
  sealLegacyKey(kid: string, sealed: Uint8Array): Promise<void>
  /** Emergency rotation: the new key signs now; the old ones leave the JWKS with their tokens. */
  rotateNow(
    key: SigningKeyRecord,
    withdraw: readonly string[],
    now: number,
    event: AuditInput,
  ): Promise<void>
}

/** Leases for work one process does at a time (maintenance), taken over when they expire. */
export interface LeaseStore {
  /** Takes or renews the lease; false when another holder has it unexpired. */
  acquire(name: string, holder: string, now: number, ttlMs: number): Promise<boolean>
  release(name: string, holder: string): Promise<void>
}

export interface ServerCredentialStore {
  current(hostnames: string): Promise<ServerCredentialRecord | undefined>
  /**
   * Stores a new server credential and its certificate row in one transaction — only if the
   * current one is still `expectedSerial` (null: none), so racing processes issue one.
   */
  replace(
    credential: ServerCredentialRecord,
    certificate: NewCertificate,
    expectedSerial: string | null,
    event: AuditInput,
  ): Promise<boolean>
}

/** Everything the CA keeps, behind one backend. */
export interface Store {
  readonly backend: 'sqlite' | 'postgres'
  readonly audit: AuditStore
  readonly entries: EntryStore
  readonly certificates: CertificateStore
  readonly crls: CrlStore
  readonly tokens: TokenStore
  readonly signingKeys: SigningKeyStore
  readonly leases: LeaseStore
  readonly serverCredentials: ServerCredentialStore
  /** Resolves once everything this process committed is durable (see SqlDriver.settled). */
  settled(): Promise<void>
  close(): Promise<void>
}
