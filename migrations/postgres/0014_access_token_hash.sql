-- The SHA-256 of each access token as issued. Introspection finds the token by its jti anyway;
-- when the presented token's hash matches, those are exactly the bytes this CA signed and the
-- signature need not be checked again (an ES256 verification costs more than the rest of an
-- introspection's database work). Rows from before this migration have none: their tokens are
-- verified by signature, as before.
ALTER TABLE access_tokens ADD COLUMN token_sha256 BYTEA;
