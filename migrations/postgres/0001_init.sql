-- certbound schema v1 (PostgreSQL): the certificate path. Same tables, columns and indexes as
-- migrations/sqlite/0001_init.sql; times are BIGINT milliseconds since the epoch (UTC),
-- booleans 0/1 integers, BLOB is BYTEA, SQLite's rowid keys are identity columns.

CREATE TABLE ca_certificates (
  id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind        TEXT    NOT NULL CHECK (kind IN ('root', 'intermediate')),
  serial      TEXT    NOT NULL UNIQUE,
  der         BYTEA   NOT NULL,
  key_file    TEXT    NOT NULL,           -- relative to data_dir; the key itself is never in the database
  not_before  BIGINT  NOT NULL,
  not_after   BIGINT  NOT NULL,
  created_at  BIGINT  NOT NULL
);

CREATE TABLE entries (
  id          TEXT    PRIMARY KEY,
  spiffe_id   TEXT    NOT NULL UNIQUE,
  dns_names   TEXT    NOT NULL DEFAULT '[]',  -- JSON array
  max_ttl_ms  BIGINT,                         -- NULL: certificates.max_ttl applies
  enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  created_at  BIGINT  NOT NULL,
  updated_at  BIGINT  NOT NULL
);

CREATE TABLE join_tokens (
  id          TEXT    PRIMARY KEY,            -- the token's public lookup prefix
  token_hash  TEXT    NOT NULL,               -- SHA-256 of the whole token, compared in constant time
  entry_id    TEXT    NOT NULL REFERENCES entries (id),
  expires_at  BIGINT  NOT NULL,
  used_at     BIGINT,
  used_by     TEXT,                           -- serial of the certificate it produced
  created_at  BIGINT  NOT NULL
);

CREATE TABLE certificates (
  id                BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insertion order, for stable list cursors
  serial            TEXT    NOT NULL UNIQUE,  -- lowercase hex of the DER INTEGER bytes
  kind              TEXT    NOT NULL CHECK (kind IN ('workload', 'admin', 'server')),
  spiffe_id         TEXT,                     -- NULL only for the server's TLS certificate
  entry_id          TEXT    REFERENCES entries (id),
  thumbprint        TEXT    NOT NULL UNIQUE,  -- base64url SHA-256 of the DER (RFC 8705 x5t#S256)
  spki_sha256       TEXT    NOT NULL,
  not_before        BIGINT  NOT NULL,
  not_after         BIGINT  NOT NULL,
  status            TEXT    NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'revoked')),
  revoked_at        BIGINT,
  revocation_reason TEXT,
  renewed_from      TEXT    REFERENCES certificates (serial),
  der               BYTEA   NOT NULL,
  issued_at         BIGINT  NOT NULL,
  CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX certificates_by_spiffe_id ON certificates (spiffe_id, id);
CREATE INDEX certificates_by_spki ON certificates (spki_sha256) WHERE status = 'valid';
CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE status = 'revoked';
CREATE INDEX certificates_by_parent ON certificates (renewed_from);

-- Keys revoked for keyCompromise: never certified again.
CREATE TABLE compromised_keys (
  spki_sha256 TEXT    PRIMARY KEY,
  serial      TEXT    NOT NULL,
  at          BIGINT  NOT NULL
);

CREATE TABLE crl_state (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  crl_number  BIGINT  NOT NULL
);
INSERT INTO crl_state (id, crl_number) VALUES (1, 0);

CREATE TABLE audit_events (
  id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          BIGINT  NOT NULL,
  actor       TEXT    NOT NULL,
  action      TEXT    NOT NULL,
  subject     TEXT,
  details     TEXT                             -- JSON; never holds a secret
);
CREATE INDEX audit_events_by_subject ON audit_events (subject, id);
