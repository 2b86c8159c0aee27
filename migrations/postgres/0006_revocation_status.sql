-- certbound schema v6 (PostgreSQL): revocation status for every CA and CA rotation. Mirrors
-- migrations/sqlite/0006_revocation_status.sql.

-- Every CA certificate by its key id (lowercase hex of the subject key identifier): the roots
-- and the issuing CAs. init's CA keys stay files in data_dir (key_file); an issuing CA made by
-- a rotation keeps its key here, sealed under the key-encryption key (key_sealed); a root kept
-- offline has neither. The intermediate with the highest activated_at is the current issuer.
CREATE TABLE issuing_cas (
  key_id            TEXT    PRIMARY KEY,
  kind              TEXT    NOT NULL CHECK (kind IN ('root', 'intermediate')),
  serial            TEXT    NOT NULL UNIQUE,
  der               BYTEA    NOT NULL,
  parent_key_id     TEXT,                    -- the CA that signed it (NULL: a root)
  key_file          TEXT,
  key_sealed        BYTEA,
  not_before        BIGINT  NOT NULL,
  not_after         BIGINT  NOT NULL,
  activated_at      BIGINT,                 -- became the issuer of new certificates
  revoked_at        BIGINT,                 -- listed in its parent's CRL from then on
  revocation_reason TEXT,
  created_at        BIGINT  NOT NULL
);

-- An issuing CA key whose certificate an offline root is to sign (`ca intermediate-csr`).
CREATE TABLE pending_issuers (
  key_id      TEXT    PRIMARY KEY,
  key_sealed  BYTEA    NOT NULL,
  csr         BYTEA    NOT NULL,
  created_at  BIGINT  NOT NULL
);

-- Which CA signed a certificate (its key id); NULL only until the start that fills it in.
ALTER TABLE certificates ADD COLUMN issuer_key_id TEXT;
CREATE INDEX certificates_revoked_by_issuer ON certificates (issuer_key_id, revoked_at)
  WHERE status = 'revoked';

-- Delegated OCSP responders (RFC 6960 §4.2.2.2), one or more per issuing CA, short-lived.
CREATE TABLE ocsp_signers (
  serial        TEXT    PRIMARY KEY,
  issuer_key_id TEXT    NOT NULL,
  der           BYTEA    NOT NULL,
  key_sealed    BYTEA    NOT NULL,
  not_before    BIGINT  NOT NULL,
  not_after     BIGINT  NOT NULL,
  created_at    BIGINT  NOT NULL
);
CREATE INDEX ocsp_signers_by_issuer ON ocsp_signers (issuer_key_id, not_after);

-- Signed OCSP responses without a nonce, one per certificate, with the status they state: a
-- response whose status differs from the certificate's row is stale and signed again.
CREATE TABLE ocsp_responses (
  issuer_key_id TEXT    NOT NULL,
  serial        TEXT    NOT NULL,
  status        TEXT    NOT NULL CHECK (status IN ('good', 'revoked')),
  revoked_at    BIGINT,
  this_update   BIGINT  NOT NULL,
  next_update   BIGINT  NOT NULL,
  der           BYTEA    NOT NULL,
  PRIMARY KEY (issuer_key_id, serial)
);

-- Serialises CA rotations across processes and replicas (PostgreSQL FOR UPDATE).
INSERT INTO locks (name) VALUES ('issuing_cas');

-- The subject CN an entry's certificates carry instead of the SPIFFE path (NULL: the path).
ALTER TABLE entries ADD COLUMN subject_cn TEXT;
