-- certbound schema v8 (PostgreSQL): enrolment by an OIDC identity token (no join token).
-- Same tables, columns and indexes as migrations/sqlite/0008_oidc_enrollment.sql.

-- An entry's OIDC rule: NULL (join tokens only), or JSON {"issuer": "<name in
-- federation.oidc_issuers>", "claims": {"<claim or JSON Pointer>": "<exact value or * glob>"}}.
ALTER TABLE entries ADD COLUMN oidc TEXT;

-- Each OIDC token enrols at most once: its use is recorded in the enrolment's own transaction,
-- a conditional insert on the primary key, and kept until the token expires.
CREATE TABLE oidc_token_uses (
  token_hash  TEXT    PRIMARY KEY,             -- SHA-256 of the token's signed header.payload, never the token
  issuer      TEXT    NOT NULL,                -- the issuer's name in federation.oidc_issuers
  used_at     BIGINT  NOT NULL,
  used_by     TEXT    NOT NULL,                -- serial of the certificate it enrolled
  expires_at  BIGINT  NOT NULL                 -- a replay is refused until then; purged after
);
CREATE INDEX oidc_token_uses_by_expiry ON oidc_token_uses (expires_at);
