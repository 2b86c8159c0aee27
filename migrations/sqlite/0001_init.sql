-- certbound schema v1: the certificate path. Times are integer milliseconds since the epoch (UTC).

CREATE TABLE ca_certificates (
  id          INTEGER PRIMARY KEY,
  kind        TEXT    NOT NULL CHECK (kind IN ('root', 'intermediate')),
  serial      TEXT    NOT NULL UNIQUE,
  der         BLOB    NOT NULL,
  key_file    TEXT    NOT NULL,           -- relative to data_dir; the key itself is never in the database
  not_before  INTEGER NOT NULL,
  not_after   INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
);

CREATE TABLE entries (
  id          TEXT    PRIMARY KEY,
  spiffe_id   TEXT    NOT NULL UNIQUE,
  dns_names   TEXT    NOT NULL DEFAULT '[]',  -- JSON array
  max_ttl_ms  INTEGER,                        -- NULL: certificates.max_ttl applies
  enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE TABLE join_tokens (
  id          TEXT    PRIMARY KEY,            -- the token's public lookup prefix
  token_hash  TEXT    NOT NULL,               -- SHA-256 of the whole token, compared in constant time
  entry_id    TEXT    NOT NULL REFERENCES entries (id),
  expires_at  INTEGER NOT NULL,
  used_at     INTEGER,
  used_by     TEXT,                           -- serial of the certificate it produced
  created_at  INTEGER NOT NULL
);

CREATE TABLE certificates (
  id                INTEGER PRIMARY KEY,      -- insertion order, for stable list cursors
  serial            TEXT    NOT NULL UNIQUE,  -- lowercase hex of the DER INTEGER bytes
  kind              TEXT    NOT NULL CHECK (kind IN ('workload', 'admin', 'server')),
  spiffe_id         TEXT,                     -- NULL only for the server's TLS certificate
  entry_id          TEXT    REFERENCES entries (id),
  thumbprint        TEXT    NOT NULL UNIQUE,  -- base64url SHA-256 of the DER (RFC 8705 x5t#S256)
  spki_sha256       TEXT    NOT NULL,
  not_before        INTEGER NOT NULL,
  not_after         INTEGER NOT NULL,
  status            TEXT    NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'revoked')),
  revoked_at        INTEGER,
  revocation_reason TEXT,
  renewed_from      TEXT    REFERENCES certificates (serial),
  der               BLOB    NOT NULL,
  issued_at         INTEGER NOT NULL,
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
  at          INTEGER NOT NULL
);

CREATE TABLE crl_state (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  crl_number  INTEGER NOT NULL
);
INSERT INTO crl_state (id, crl_number) VALUES (1, 0);

CREATE TABLE audit_events (
  id          INTEGER PRIMARY KEY,
  at          INTEGER NOT NULL,
  actor       TEXT    NOT NULL,
  action      TEXT    NOT NULL,
  subject     TEXT,
  details     TEXT                             -- JSON; never holds a secret
);
CREATE INDEX audit_events_by_subject ON audit_events (subject, id);
