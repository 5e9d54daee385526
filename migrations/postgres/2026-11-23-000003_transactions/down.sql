DROP TABLE member_tokens;
DROP TABLE idempotency_keys;
DROP TABLE partner_chains;
DROP TABLE reversals;
DROP TABLE transactions;
DROP TABLE business_days;
