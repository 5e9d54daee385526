ALTER TABLE certificates DROP COLUMN revocation_reason;
DROP TABLE finance_users;
