-- certbound schema v5 (PostgreSQL): state every process and replica shares, kept in the
-- database. Mirrors migrations/sqlite/0005_shared_state.sql.

-- Token-signing private keys move into the database, sealed (AES-256-GCM) under the
-- key-encryption key in data_dir; key_file is gone (keys of an older data_dir are imported
-- at start, see src/tokens/keys.ts). Rebuilt as on SQLite, so the columns keep one order.
CREATE TABLE signing_keys_v5 (
  kid                 TEXT    PRIMARY KEY,
  alg                 TEXT    NOT NULL,
  public_jwk          TEXT    NOT NULL,
  private_key_sealed  BYTEA,                   -- NULL only until a v4 key file is imported
  legacy_key_file     TEXT,                    -- the v4 key file, relative to data_dir
  created_at          BIGINT  NOT NULL,
  publish_at          BIGINT  NOT NULL,
  activate_at         BIGINT  NOT NULL,
  retire_at           BIGINT,
  withdraw_at         BIGINT
);
INSERT INTO signing_keys_v5 (kid, alg, public_jwk, legacy_key_file, created_at, publish_at,
  activate_at, retire_at, withdraw_at)
  SELECT kid, alg, public_jwk, key_file, created_at, publish_at, activate_at, retire_at, withdraw_at
  FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_v5 RENAME TO signing_keys;
ALTER INDEX signing_keys_v5_pkey RENAME TO signing_keys_pkey;

-- The signed CRL, stored once per change; the highest number per issuer is current.
-- crl_state.revision is bumped by every revocation: a stored CRL of an older revision is stale.
ALTER TABLE crl_state ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
CREATE TABLE crls (
  id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  issuer_key_id TEXT    NOT NULL,            -- lowercase hex of the issuer's subject key identifier
  crl_number    BIGINT  NOT NULL,
  revision      BIGINT  NOT NULL,
  this_update   BIGINT  NOT NULL,
  next_update   BIGINT  NOT NULL,
  der           BYTEA   NOT NULL,
  UNIQUE (issuer_key_id, crl_number)
);

-- Work one process does at a time (maintenance), with expiry so another takes over.
CREATE TABLE leases (
  name        TEXT    PRIMARY KEY,
  holder      TEXT    NOT NULL,
  expires_at  BIGINT  NOT NULL
);

-- Rows whose lock serialises a decision made by many processes at once (FOR UPDATE).
CREATE TABLE locks (name TEXT PRIMARY KEY);
INSERT INTO locks (name) VALUES ('signing_keys'), ('server_credentials');

-- The server's TLS certificate and key as one unit (written together, loaded as a pair).
CREATE TABLE server_credentials (
  id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  hostnames   TEXT    NOT NULL,                -- normalised server.hostnames
  serial      TEXT    NOT NULL REFERENCES certificates (serial),
  chain_pem   TEXT    NOT NULL,
  key_sealed  BYTEA   NOT NULL,
  not_after   BIGINT  NOT NULL,
  created_at  BIGINT  NOT NULL
);
CREATE INDEX server_credentials_by_hostnames ON server_credentials (hostnames, id);

-- keyCompromise follows a key through certificates in any state.
DROP INDEX certificates_by_spki;
CREATE INDEX certificates_by_spki ON certificates (spki_sha256);
