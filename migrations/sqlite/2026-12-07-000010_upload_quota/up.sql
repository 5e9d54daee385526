-- The bytes of each stored upload, and an index to sum a partner's uploads of a day, for the
-- per-partner upload quota (ALLIANCE_UPLOADS_PER_PARTNER_PER_DAY and …_BYTES_…).
ALTER TABLE reconciliation_uploads ADD COLUMN body_bytes BIGINT NOT NULL DEFAULT 0;
UPDATE reconciliation_uploads SET body_bytes = LENGTH(CAST(body AS BLOB));
CREATE INDEX reconciliation_uploads_received ON reconciliation_uploads (partner_code, created_at);
