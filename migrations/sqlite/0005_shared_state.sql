-- certbound schema v5: state every process and replica shares, kept in the database.

-- Token-signing private keys move into the database, sealed (AES-256-GCM) under the
-- key-encryption key in data_dir; key_file is gone (keys of an older data_dir are imported
-- at start, see src/tokens/keys.ts).
CREATE TABLE signing_keys_v5 (
  kid                 TEXT    PRIMARY KEY,
  alg                 TEXT    NOT NULL,
  public_jwk          TEXT    NOT NULL,
  private_key_sealed  BLOB,                    -- NULL only until a v4 key file is imported
  legacy_key_file     TEXT,                    -- the v4 key file, relative to data_dir
  created_at          INTEGER NOT NULL,
  publish_at          INTEGER NOT NULL,
  activate_at         INTEGER NOT NULL,
  retire_at           INTEGER,
  withdraw_at         INTEGER
);
INSERT INTO signing_keys_v5 (kid, alg, public_jwk, legacy_key_file, created_at, publish_at,
  activate_at, retire_at, withdraw_at)
  SELECT kid, alg, public_jwk, key_file, created_at, publish_at, activate_at, retire_at, withdraw_at
  FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_v5 RENAME TO signing_keys;

-- The signed CRL, stored once per change; the highest number per issuer is current.
-- crl_state.revision is bumped by every revocation: a stored CRL of an older revision is stale.
ALTER TABLE crl_state ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
CREATE TABLE crls (
  id            INTEGER PRIMARY KEY,
  issuer_key_id TEXT    NOT NULL,            -- lowercase hex of the issuer's subject key identifier
  crl_number    INTEGER NOT NULL,
  revision      INTEGER NOT NULL,
  this_update   INTEGER NOT NULL,
  next_update   INTEGER NOT NULL,
  der           BLOB    NOT NULL,
  UNIQUE (issuer_key_id, crl_number)
);

-- Work one process does at a time (maintenance), with expiry so another takes over.
CREATE TABLE leases (
  name        TEXT    PRIMARY KEY,
  holder      TEXT    NOT NULL,
  expires_at  INTEGER NOT NULL
);

-- Rows whose lock serialises a decision made by many processes at once (PostgreSQL FOR UPDATE).
CREATE TABLE locks (name TEXT PRIMARY KEY);
INSERT INTO locks (name) VALUES ('signing_keys'), ('server_credentials');

-- The server's TLS certificate and key as one unit (written together, loaded as a pair).
CREATE TABLE server_credentials (
  id          INTEGER PRIMARY KEY,
  hostnames   TEXT    NOT NULL,                -- normalised server.hostnames
  serial      TEXT    NOT NULL REFERENCES certificates (serial),
  chain_pem   TEXT    NOT NULL,
  key_sealed  BLOB    NOT NULL,
  not_after   INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE INDEX server_credentials_by_hostnames ON server_credentials (hostnames, id);

-- keyCompromise follows a key through certificates in any state.
DROP INDEX certificates_by_spki;
CREATE INDEX certificates_by_spki ON certificates (spki_sha256);
