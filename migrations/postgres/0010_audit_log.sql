-- certbound schema v10 (PostgreSQL): the audit log as an append-only Merkle tree (RFC 9162),
-- signed checkpoints (C2SP tlog-checkpoint) and its hashes stored as C2SP tlog-tiles.
-- Mirrors migrations/sqlite/0010_audit_log.sql.

-- Writers insert events with leaf_index NULL (one INSERT, as before); the checkpointer gives
-- committed events their leaf index in commit order (src/audit/log.ts): identity values are
-- handed out at insert, and concurrent transactions commit in another order.
ALTER TABLE audit_events ADD COLUMN leaf_index BIGINT;
CREATE UNIQUE INDEX audit_events_by_leaf ON audit_events (leaf_index) WHERE leaf_index IS NOT NULL;
CREATE INDEX audit_events_pending ON audit_events (id) WHERE leaf_index IS NULL;

-- The log's identity: one row. The Ed25519 key signs checkpoints; its private half is sealed
-- under the key-encryption key. Events below pruned_below may have been purged (retention);
-- their leaf hashes stay in audit_tiles, so the tree and every checkpoint stay verifiable.
CREATE TABLE audit_log (
  id                  INTEGER PRIMARY KEY CHECK (id = 1),
  origin              TEXT    NOT NULL,        -- checkpoint origin line and note key name
  public_key          BYTEA   NOT NULL,        -- 32-byte Ed25519 public key (RFC 8032)
  private_key_sealed  BYTEA   NOT NULL,
  created_at          BIGINT  NOT NULL,
  pruned_below        BIGINT  NOT NULL DEFAULT 0
);

-- Tiles (c2sp.org/tlog-tiles): level 0 holds leaf hashes, level L the hashes of full tiles of
-- level L-1; 256 hashes of 32 bytes when full. The rightmost tile of a level grows in place.
CREATE TABLE audit_tiles (
  level       BIGINT  NOT NULL,
  tile_index  BIGINT  NOT NULL,
  width       BIGINT  NOT NULL,
  hashes      BYTEA   NOT NULL,
  PRIMARY KEY (level, tile_index)
);

-- One signed checkpoint per batch the checkpointer appends (the note, as served).
CREATE TABLE audit_checkpoints (
  tree_size   BIGINT  PRIMARY KEY,
  root_hash   BYTEA   NOT NULL,
  created_at  BIGINT  NOT NULL,
  note        TEXT    NOT NULL
);

INSERT INTO locks (name) VALUES ('audit_log');
