import type {
  AccessTokenState,
  AuditInput,
  AuthFailureWindow,
  AuditLogKey,
  AuditTile,
  LogAppender,
  LogAppendResult,
  LoggedAuditEvent,
  StoredCheckpoint,
  AuditRecord,
  CaCertificateRecord,
  CertificateQuery,
  CertificateRecord,
  CertificateState,
  CloneSignal,
  CommitRefusalReason,
  CrlSnapshot,
  EntryPatch,
  EnrollmentCredential,
  EntryRecord,
  FamilyRecord,
  FoundJoinToken,
  IssuingCaRecord,
  OcspLookup,
  OcspSignerRecord,
  PendingIssuer,
  StoredOcspResponse,
  JoinTokenInput,
  KeyRetirement,
  LineageRecord,
  LineageRevocation,
  LineageWithGenerations,
  NewAccessToken,
  NewCertificate,
  NewFamily,
  NewRefreshToken,
  Page,
  PromotionResult,
  RefreshCommit,
  RefreshCommitInput,
  RefreshTokenState,
  RenewalContext,
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
  /** The row without the certificate's bytes (the per-request check of a client certificate). */
  getState(serial: string): Promise<CertificateState | undefined>
  list(q: CertificateQuery): Promise<Page<CertificateRecord>>
  isKeyCompromised(spkiSha256: string): Promise<boolean>
  /** Records a certificate the CA issued for itself (admin credential). */
  insert(c: NewCertificate, event: AuditInput): Promise<void>
  /**
   * Enrolment: spends the credential — a join token only if still unused and unexpired at
   * `now`, an OIDC token only if its use was never recorded (a conditional insert) — so of N
   * racing redemptions exactly one commits; re-checks the entry and the key (not compromised,
   * not certified for another SPIFFE ID), stores the certificate and starts its lineage
   * (`c.lineageId`, generation 1, current).
   */
  commitEnrollment(
    credential: EnrollmentCredential,
    c: NewCertificate,
    event: AuditInput,
    now: number,
    peer?: string | null,
  ): Promise<CommitRefusalReason | undefined>
  /**
   * Renewal: the parent (`c.renewedFrom`) must still be valid at `now` (or within the grace of a
   * renewal after expiry) and the current generation of its active lineage; the new certificate
   * is the lineage's next generation, replacing (revoked `superseded`) a next one never used. A
   * parent retired by then is a clone: the lineage is contained in this transaction.
   */
  commitRenewal(
    c: NewCertificate,
    event: AuditInput,
    now: number,
    context?: RenewalContext,
  ): Promise<CommitRefusalReason | undefined>
  /** The SPIFFE ID a public key is certified for (in any state), if any. */
  keyIdentity(spkiSha256: string): Promise<string | undefined>
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

/** Lineages and their generations (CONTRACT "Lineages (renewal history) and cloned credentials"). */
export interface LineageStore {
  /** The lineage's own row (no certificates). */
  find(id: string): Promise<LineageRecord | undefined>
  /** The lineage with every certificate of it. */
  get(id: string): Promise<LineageWithGenerations | undefined>
  /**
   * The first use of a next generation: makes it current and retires the current one, with a
   * conditional update under the lineage's row lock (of racing first uses one changes it).
   */
  promote(serial: string, now: number, peer: string | null): Promise<PromotionResult>
  /**
   * A retired generation asked to renew, or for a token after the grace: revokes the whole
   * lineage (keyCompromise, its keys refused) and every token family bound to any of its
   * certificates, with the audit event `lineage.clone_detected`, in one transaction.
   * Undefined: not a certificate of a lineage.
   */
  contain(signal: CloneSignal): Promise<LineageRevocation | undefined>
  /** Revokes a lineage with its certificates and tokens (admin). Undefined: unknown id. */
  revoke(
    id: string,
    reason: string,
    now: number,
    actor: string,
  ): Promise<LineageRevocation | undefined>
}

/** The signed CRL, built once per change and served by every process from here. */
export interface CrlStore {
  /**
   * Allocates the next CRL number and reads the revoked certificates (and CAs) that `issuerKeyId`
   * signed (all issuers when absent) whose notAfter is after `listedUntil`, in one transaction,
   * so a higher number never reflects fewer revocations.
   */
  snapshot(listedUntil: number, issuerKeyId?: string): Promise<CrlSnapshot>
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
  /**
   * Forgets expired tokens and the families left without any, `chunk` rows of each kind per
   * transaction (default 1,000) with pauses between them, so that a backlog never holds the
   * writer for long; after `budgetMs` (default: none) it stops with `complete: false`, the
   * rest left for the next call.
   */
  purgeExpired(
    now: number,
    options?: { chunk?: number; budgetMs?: number },
  ): Promise<{ accessTokens: number; refreshTokens: number; complete: boolean }>
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

/** Uses of OIDC identity tokens (recorded by `commitEnrollment`), kept until they expire. */
export interface OidcTokenStore {
  /** Whether a use of this token is recorded and unexpired at `now` (an early replay check). */
  isUsed(tokenHash: string, now: number): Promise<boolean>
  /** Forgets uses of tokens expired before `now`; returns how many. */
  purgeExpired(now: number): Promise<number>
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

/** The CA certificates (roots and issuing CAs) and CA rotation. */
export interface IssuingCaStore {
  list(): Promise<IssuingCaRecord[]>
  /**
   * Records a CA certificate once by key id (false: known already). One with `activatedAt`
   * becomes the current issuer, only if the current one is still `expectedCurrent` (null: none);
   * it takes the place of a pending key of the same id.
   */
  add(ca: IssuingCaRecord, expectedCurrent: string | null, event: AuditInput): Promise<boolean>
  /**
   * Records the CA of data_dir (its root and first issuing CA, each with its event) in one
   * transaction, unless a current issuer is recorded already: false then, and when every row
   * was known. Of processes racing on one database, one records it and the others see all of
   * it; rows of a partial record (written one by one before) stay, the missing ones are added.
   */
  recordInitial(cas: readonly { ca: IssuingCaRecord; event: AuditInput }[]): Promise<boolean>
  /** Certificates stored before v6 (no issuer) are attributed to `keyId`; returns how many. */
  attributeUnassigned(keyId: string): Promise<number>
  savePending(p: PendingIssuer, event: AuditInput): Promise<void>
  pending(keyId: string): Promise<PendingIssuer | undefined>
}

/** OCSP: responder certificates and pre-signed responses, shared by every process. */
export interface OcspStore {
  /** The certificate's current status and its stored response, in one read. */
  lookup(issuerKeyId: string, serial: string): Promise<OcspLookup>
  /** Stores (replaces) the response for one certificate. */
  saveResponse(r: StoredOcspResponse): Promise<void>
  /** Responder certificates of an issuer that are unexpired at `now`, newest first. */
  signers(issuerKeyId: string, now: number): Promise<OcspSignerRecord[]>
  addSigner(s: OcspSignerRecord, event: AuditInput): Promise<void>
}

/**
 * Failed authentications per peer address (`limits.*`), shared by every process and replica.
 * A window starts at a peer's first failure and lasts `windowMs`; the first failure after it
 * ended starts the next one. These rows are the only write a refused request may cause.
 */
export interface AuthFailureStore {
  /** Counts one failure of `peer` at `now`; the count and start of its window, this one included. */
  record(peer: string, now: number, windowMs: number): Promise<AuthFailureWindow>
  /** The window of `peer` that is open at `now`, if any. */
  current(peer: string, now: number, windowMs: number): Promise<AuthFailureWindow | undefined>
  /** Forgets windows that ended before `now`; returns how many. */
  purge(now: number, windowMs: number): Promise<number>
}

/** What operators' checks read: health, metrics, `certbound doctor` (both backends). */
export interface OpsStore {
  /** The schema version (a read of the database: fails when it is unreachable). */
  schemaVersion(): Promise<number>
  /** Valid certificates whose notAfter is in (now, until]. */
  expiringCertificates(now: number, until: number): Promise<number>
  /** Bytes the database takes (SQLite pages, PostgreSQL pg_database_size). */
  databaseBytes(): Promise<number>
  /** The database server's clock (epoch ms), for the clock-skew check. */
  databaseTime(): Promise<number>
  /** Integrity problems the engine finds ([] = none): PRAGMA integrity_check, or catalog checks. */
  integrityProblems(): Promise<string[]>
  /** Writes that waited for another writer and tried again, since this process opened it. */
  busyRetries(): number
}

/**
 * The audit log as an append-only Merkle tree (src/audit): writers only insert events
 * (`writeAudit`); the checkpointer appends committed events to the tree, in commit order, and
 * signs a checkpoint, one transaction per batch.
 */
export interface AuditLogStore {
  /** Stores the log's key with its event unless a key exists (of racing processes one wins). */
  createKey(key: AuditLogKey, event: AuditInput): Promise<AuditLogKey>
  key(): Promise<AuditLogKey | undefined>
  /** Committed events still waiting for their leaf index (a read, no lock). */
  pending(): Promise<{ count: number; oldestAt: number | null }>
  /**
   * One batch, one transaction, serialised with any other checkpointer by a row lock: up to
   * `limit` committed events without a leaf index, in id order, become the next leaves; the
   * appender's tiles and checkpoint are stored with them. Undefined when none was waiting.
   */
  append(
    limit: number,
    appender: LogAppender,
  ): Promise<(LogAppendResult & { appended: number }) | undefined>
  latestCheckpoint(): Promise<StoredCheckpoint | undefined>
  /** Checkpoints of more than `after` leaves, smallest first. */
  checkpoints(after: number, limit: number): Promise<StoredCheckpoint[]>
  /** The stored tiles among `keys` (absent ones are left out). */
  tiles(keys: readonly { level: number; index: number }[]): Promise<AuditTile[]>
  /** Tiles of one level from index `from` on, in order. */
  tileRange(level: number, from: number, limit: number): Promise<AuditTile[]>
  /** Events with a leaf index of at least `from`, in leaf order. */
  eventsByLeaf(from: number, limit: number): Promise<LoggedAuditEvent[]>
  /** The events about `subject` with one of `actions`, in id order. */
  eventsBySubject(subject: string, actions: readonly string[]): Promise<LoggedAuditEvent[]>
  /**
   * Retention, one transaction: deletes the events from `prunedBelow` on, up to the first
   * written at or after `cutoff` (at most `limit`), and the checkpoints signed before `cutoff`
   * but the newest; raises `prunedBelow`; writes its own audit event. Leaf hashes (tiles) stay.
   */
  prune(
    cutoff: number,
    limit: number,
    now: number,
  ): Promise<{ events: number; checkpoints: number; prunedBelow: number }>
}

/** Everything the CA keeps, behind one backend. */
export interface Store {
  readonly backend: 'sqlite' | 'postgres'
  readonly audit: AuditStore
  readonly auditLog: AuditLogStore
  readonly entries: EntryStore
  readonly certificates: CertificateStore
  readonly lineages: LineageStore
  readonly crls: CrlStore
  readonly tokens: TokenStore
  readonly signingKeys: SigningKeyStore
  readonly leases: LeaseStore
  readonly serverCredentials: ServerCredentialStore
  readonly issuingCas: IssuingCaStore
  readonly ocsp: OcspStore
  readonly oidcTokens: OidcTokenStore
  readonly authFailures: AuthFailureStore
  readonly ops: OpsStore
  /** Resolves once everything this process committed is durable (see SqlDriver.settled). */
  settled(): Promise<void>
  close(): Promise<void>
}
