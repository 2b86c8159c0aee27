-- certbound schema v2: certificate-bound tokens (RFC 8705) and their signing keys.

CREATE TABLE signing_keys (
  kid          TEXT    PRIMARY KEY,
  alg          TEXT    NOT NULL,
  public_jwk   TEXT    NOT NULL,               -- JSON; the private key is a 0600 file under data_dir
  key_file     TEXT    NOT NULL,
  created_at   INTEGER NOT NULL,
  publish_at   INTEGER NOT NULL,               -- in the JWKS from here
  activate_at  INTEGER NOT NULL,               -- signs from here (publish_at + access ttl + JWKS cache)
  retire_at    INTEGER,                        -- stops signing
  withdraw_at  INTEGER                         -- leaves the JWKS (after its last token expired, or at once)
);

CREATE TABLE token_families (
  id                 TEXT    PRIMARY KEY,
  spiffe_id          TEXT    NOT NULL,
  entry_id           TEXT    REFERENCES entries (id),
  cert_serial        TEXT    NOT NULL REFERENCES certificates (serial),  -- the certificate it is bound to now
  scope              TEXT,
  status             TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  revoked_at         INTEGER,
  revoked_reason     TEXT,
  created_at         INTEGER NOT NULL
);
CREATE INDEX token_families_by_cert ON token_families (cert_serial) WHERE status = 'active';
CREATE INDEX token_families_by_entry ON token_families (entry_id) WHERE status = 'active';

-- Every refresh token ever issued; used ones stay for reuse detection.
CREATE TABLE refresh_tokens (
  id           TEXT    PRIMARY KEY,            -- the token's public lookup prefix
  token_hash   TEXT    NOT NULL,               -- SHA-256 of the whole token, compared in constant time
  family_id    TEXT    NOT NULL REFERENCES token_families (id),
  issued_at    INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  used_at      INTEGER
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

CREATE TABLE access_tokens (
  jti          TEXT    PRIMARY KEY,
  family_id    TEXT    REFERENCES token_families (id),
  cert_serial  TEXT    NOT NULL REFERENCES certificates (serial),
  spiffe_id    TEXT    NOT NULL,
  kid          TEXT    NOT NULL,
  issued_at    INTEGER NOT NULL,
  expires_at   INTEGER NOT NULL,
  revoked_at   INTEGER
);
CREATE INDEX access_tokens_by_cert ON access_tokens (cert_serial);
CREATE INDEX access_tokens_by_family ON access_tokens (family_id);
CREATE INDEX access_tokens_by_expiry ON access_tokens (expires_at);
