DROP INDEX reconciliation_uploads_received;
ALTER TABLE reconciliation_uploads DROP COLUMN body_bytes;
