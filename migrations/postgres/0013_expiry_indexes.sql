-- A CRL lists the revoked certificates of one issuer that have not expired: found by their
-- expiry, not by reading every certificate that issuer ever revoked (they are never purged).
CREATE INDEX certificates_crl ON certificates (issuer_key_id, not_after) WHERE status = 'revoked';

-- The certbound_certificates_expiring_24h gauge counts valid certificates by expiry on every
-- scrape: a range of this index instead of a scan of the whole table. New certificates expire
-- last, so each issuance appends at its end.
CREATE INDEX certificates_valid_by_expiry ON certificates (not_after) WHERE status = 'valid';
