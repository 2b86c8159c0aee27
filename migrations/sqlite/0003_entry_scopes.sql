-- certbound schema v3: an optional allow-list of OAuth scopes per entry.
-- NULL: the entry's workloads may ask for any well-formed scope; a JSON array pins them.
ALTER TABLE entries ADD COLUMN scopes TEXT;
