-- certbound schema v4: an entry's ttl cap as the admin wrote it ("24h" reads back as "24h",
-- not "1d"); max_ttl_ms stays the value the policy computes with.
ALTER TABLE entries ADD COLUMN max_ttl TEXT;
UPDATE entries SET max_ttl = CASE
  WHEN max_ttl_ms % 86400000 = 0 THEN (max_ttl_ms / 86400000) || 'd'
  WHEN max_ttl_ms % 3600000 = 0 THEN (max_ttl_ms / 3600000) || 'h'
  WHEN max_ttl_ms % 60000 = 0 THEN (max_ttl_ms / 60000) || 'm'
  ELSE (max_ttl_ms / 1000) || 's'
END
WHERE max_ttl_ms IS NOT NULL;
