-- Every start attributes certificates written before issuing CAs were recorded (v6) to init's
-- CA: `UPDATE ... WHERE issuer_key_id IS NULL`. Without an index that scanned every certificate
-- at each start (a million rows: 0.2-0.7 s); this one holds only those rows, none once done.
CREATE INDEX certificates_unattributed ON certificates (id) WHERE issuer_key_id IS NULL;
