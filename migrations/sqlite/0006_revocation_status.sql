-- certbound schema v6: revocation status for every CA (CRLs per issuer, OCSP) and CA rotation.

-- Every CA certificate by its key id (lowercase hex of the subject key identifier): the roots
-- and the issuing CAs. init's CA keys stay files in data_dir (key_file); an issuing CA made by
-- a rotation keeps its key here, sealed under the key-encryption key (key_sealed); a root kept
-- offline has neither. The intermediate with the highest activated_at is the current issuer.
CREATE TABLE issuing_cas (
  key_id            TEXT    PRIMARY KEY,
  kind              TEXT    NOT NULL CHECK (kind IN ('root', 'intermediate')),
  serial            TEXT    NOT NULL UNIQUE,
  der               BLOB    NOT NULL,
  parent_key_id     TEXT,                    -- the CA that signed it (NULL: a root)
  key_file          TEXT,
  key_sealed        BLOB,
  not_before        INTEGER NOT NULL,
  not_after         INTEGER NOT NULL,
  activated_at      INTEGER,                 -- became the issuer of new certificates
  revoked_at        INTEGER,                 -- listed in its parent's CRL from then on
  revocation_reason TEXT,
  created_at        INTEGER NOT NULL
);

-- An issuing CA key whose certificate an offline root is to sign (`ca intermediate-csr`).
CREATE TABLE pending_issuers (
  key_id      TEXT    PRIMARY KEY,
  key_sealed  BLOB    NOT NULL,
  csr         BLOB    NOT NULL,
  created_at  INTEGER NOT NULL
);

-- Which CA signed a certificate (its key id); NULL only until the start that fills it in.
ALTER TABLE certificates ADD COLUMN issuer_key_id TEXT;
CREATE INDEX certificates_revoked_by_issuer ON certificates (issuer_key_id, revoked_at)
  WHERE status = 'revoked';

-- Delegated OCSP responders (RFC 6960 §4.2.2.2), one or more per issuing CA, short-lived.
CREATE TABLE ocsp_signers (
  serial        TEXT    PRIMARY KEY,
  issuer_key_id TEXT    NOT NULL,
  der           BLOB    NOT NULL,
  key_sealed    BLOB    NOT NULL,
  not_before    INTEGER NOT NULL,
  not_after     INTEGER NOT NULL,
  created_at    INTEGER NOT NULL
);
CREATE INDEX ocsp_signers_by_issuer ON ocsp_signers (issuer_key_id, not_after);

-- Signed OCSP responses without a nonce, one per certificate, with the status they state: a
-- response whose status differs from the certificate's row is stale and signed again.
CREATE TABLE ocsp_responses (
  issuer_key_id TEXT    NOT NULL,
  serial        TEXT    NOT NULL,
  status        TEXT    NOT NULL CHECK (status IN ('good', 'revoked')),
  revoked_at    INTEGER,
  this_update   INTEGER NOT NULL,
  next_update   INTEGER NOT NULL,
  der           BLOB    NOT NULL,
  PRIMARY KEY (issuer_key_id, serial)
);

-- Serialises CA rotations across processes and replicas (PostgreSQL FOR UPDATE).
INSERT INTO locks (name) VALUES ('issuing_cas');

-- The subject CN an entry's certificates carry instead of the SPIFFE path (NULL: the path).
ALTER TABLE entries ADD COLUMN subject_cn TEXT;
