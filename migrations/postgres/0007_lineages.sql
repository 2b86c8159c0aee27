-- certbound schema v7 (PostgreSQL; mirrors migrations/sqlite/0007_lineages.sql): lineages
-- (renewal history with generations), key identities and renewal after expiry (CONTRACT
-- "Lineages (renewal history) and cloned credentials"; LIFECYCLE invariants 10-12).

-- One per enrolment of a workload; renewals continue it. current_serial is the generation in
-- use, next_serial one a renewal issued that has not been used yet (its first use makes it current).
CREATE TABLE lineages (
  id              TEXT    PRIMARY KEY,
  spiffe_id       TEXT    NOT NULL,
  entry_id        TEXT    REFERENCES entries (id),
  status          TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  current_serial  TEXT,
  next_serial     TEXT,
  created_at      BIGINT  NOT NULL,            -- the enrolment: renewal.max_lineage counts from here
  revoked_at      BIGINT,
  revoked_reason  TEXT
);
CREATE INDEX lineages_by_spiffe_id ON lineages (spiffe_id);

-- A workload certificate's place in its lineage (NULL for admin and server certificates). The
-- state is kept on the row itself, so the per-request mTLS check reads one row and writes nothing.
ALTER TABLE certificates ADD COLUMN lineage_id TEXT REFERENCES lineages (id);
ALTER TABLE certificates ADD COLUMN generation INTEGER;
ALTER TABLE certificates ADD COLUMN lineage_state TEXT CHECK (lineage_state IN ('current', 'next', 'retired'));
ALTER TABLE certificates ADD COLUMN retired_at BIGINT;    -- when the next generation's first use retired it
ALTER TABLE certificates ADD COLUMN last_peer TEXT;       -- the peer address of its last recorded use
CREATE INDEX certificates_by_lineage ON certificates (lineage_id, generation);

-- A public key is certified for one SPIFFE ID only (LIFECYCLE invariant 12): the primary key
-- makes that hold for enrolments racing on several replicas.
CREATE TABLE key_identities (
  spki_sha256 TEXT    PRIMARY KEY,
  spiffe_id   TEXT    NOT NULL
);

-- Renewal after expiry, per entry (NULL: off): how long after notAfter, as written and in ms.
ALTER TABLE entries ADD COLUMN renew_after_expiry_ms BIGINT;
ALTER TABLE entries ADD COLUMN renew_after_expiry TEXT;

-- The jti of every proof of possession used for a renewal after expiry, until the proof's exp.
CREATE TABLE renewal_proofs (
  serial      TEXT    NOT NULL,
  jti         TEXT    NOT NULL,
  expires_at  BIGINT  NOT NULL,
  PRIMARY KEY (serial, jti)
);
CREATE INDEX renewal_proofs_by_expiry ON renewal_proofs (expires_at);

-- Backfill (an earlier version's database): every workload certificate renewed from nothing
-- starts a lineage, named by its serial; each renewal below it is one generation further down.
-- The newest valid certificate of each lineage is current, the others retired now; a lineage
-- with no valid certificate is revoked. Nothing is revoked and no alarm is raised.
CREATE TEMP TABLE lineage_backfill ON COMMIT DROP AS
  WITH RECURSIVE chain (serial, root, depth) AS (
    SELECT serial, serial, 1 FROM certificates WHERE kind = 'workload' AND renewed_from IS NULL
    UNION ALL
    SELECT c.serial, chain.root, chain.depth + 1
    FROM certificates c JOIN chain ON c.renewed_from = chain.serial
  )
  SELECT serial, root, depth FROM chain;
-- Looked up once per certificate below: without an index that is quadratic (an hour for
-- 100,000 certificates).
CREATE INDEX lineage_backfill_by_serial ON lineage_backfill (serial);
ANALYZE lineage_backfill;

INSERT INTO lineages (id, spiffe_id, entry_id, created_at)
  SELECT serial, spiffe_id, entry_id, issued_at FROM certificates
  WHERE kind = 'workload' AND renewed_from IS NULL AND spiffe_id IS NOT NULL;

UPDATE certificates SET
  lineage_id = (SELECT b.root FROM lineage_backfill b WHERE b.serial = certificates.serial),
  generation = (SELECT b.depth FROM lineage_backfill b WHERE b.serial = certificates.serial)
WHERE serial IN (SELECT b.serial FROM lineage_backfill b JOIN lineages l ON l.id = b.root);

UPDATE lineages SET current_serial = (
  SELECT c.serial FROM certificates c WHERE c.lineage_id = lineages.id AND c.status = 'valid'
  ORDER BY c.id DESC LIMIT 1);

UPDATE lineages SET
  status = 'revoked',
  revoked_at = (SELECT max(c.revoked_at) FROM certificates c WHERE c.lineage_id = lineages.id),
  revoked_reason = (SELECT c.revocation_reason FROM certificates c WHERE c.lineage_id = lineages.id
                    ORDER BY c.revoked_at DESC LIMIT 1)
WHERE current_serial IS NULL;

UPDATE certificates SET
  lineage_state = CASE
    WHEN serial = (SELECT l.current_serial FROM lineages l WHERE l.id = certificates.lineage_id)
      THEN 'current' ELSE 'retired' END,
  retired_at = CASE
    WHEN serial = (SELECT l.current_serial FROM lineages l WHERE l.id = certificates.lineage_id)
      THEN NULL
    ELSE coalesce(revoked_at, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) END
WHERE lineage_id IS NOT NULL;

INSERT INTO key_identities (spki_sha256, spiffe_id)
  SELECT c.spki_sha256, c.spiffe_id FROM certificates c
  WHERE c.spiffe_id IS NOT NULL AND c.id = (
    SELECT min(d.id) FROM certificates d
    WHERE d.spki_sha256 = c.spki_sha256 AND d.spiffe_id IS NOT NULL);

DROP TABLE lineage_backfill;
