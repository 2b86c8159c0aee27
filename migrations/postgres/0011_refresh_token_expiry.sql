-- The hourly purge finds expired refresh tokens by this index instead of scanning them all
-- (a million rows: ~0.1 s with the event loop stopped). Keys grow with time: appended at one end.
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
