-- certbound schema v9: failed authentications per peer address (limits.failed_auth over
-- limits.window), shared by every worker and replica. One row per address (IPv6: its /64):
-- the window starts at the first failure and restarts at the first failure after it ended.
CREATE TABLE auth_failures (
  peer          TEXT    PRIMARY KEY,
  window_start  INTEGER NOT NULL,
  failures      INTEGER NOT NULL
);
-- The purge of ended windows.
CREATE INDEX auth_failures_by_window ON auth_failures (window_start);
