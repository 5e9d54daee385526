-- Foundation schema (PostgreSQL). Mirrors migrations/sqlite; types stay portable:
-- BIGINT/INTEGER, TEXT, BYTEA, TIMESTAMP (UTC, without time zone), DATE, BOOLEAN.
CREATE TABLE alliance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    first_business_day DATE NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE partners (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    contact_email TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    status_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE certificates (
    serial_hex TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL UNIQUE,
    not_before TIMESTAMP NOT NULL,
    not_after TIMESTAMP NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX certificates_identity ON certificates (identity);

CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    alg TEXT NOT NULL CHECK (alg IN ('ed25519', 'ecdsa-p256-sha256')),
    public_key BYTEA NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    retire_after TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX signing_keys_identity ON signing_keys (identity);

CREATE TABLE offer_versions (
    partner_code TEXT NOT NULL REFERENCES partners (code),
    version BIGINT NOT NULL CHECK (version >= 1),
    effective_from DATE NOT NULL,
    terms_json TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (partner_code, version)
);

CREATE TABLE members (
    id BIGSERIAL PRIMARY KEY,
    card_no TEXT NOT NULL UNIQUE,
    tier TEXT NOT NULL CHECK (tier IN ('regular', 'silver', 'gold', 'platinum')),
    status TEXT NOT NULL CHECK (status IN ('active', 'frozen', 'closed')),
    birth_month INTEGER CHECK (birth_month BETWEEN 1 AND 12),
    phone_hash TEXT UNIQUE,
    phone_key_version INTEGER,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE member_refs (
    partner_code TEXT NOT NULL REFERENCES partners (code),
    member_ref TEXT NOT NULL,
    member_id BIGINT NOT NULL REFERENCES members (id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (partner_code, member_ref)
);
CREATE UNIQUE INDEX member_refs_member ON member_refs (partner_code, member_id);

CREATE TABLE ledger_journals (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (kind, reference)
);

CREATE TABLE ledger_entries (
    id BIGSERIAL PRIMARY KEY,
    journal_id BIGINT NOT NULL REFERENCES ledger_journals (id),
    account TEXT NOT NULL,
    member_id BIGINT REFERENCES members (id),
    amount_points BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ledger_entries_member ON ledger_entries (member_id);
CREATE INDEX ledger_entries_journal ON ledger_entries (journal_id);

CREATE FUNCTION alliance_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
FOR EACH ROW EXECUTE FUNCTION alliance_append_only();

CREATE TABLE request_nonces (
    key_id TEXT NOT NULL,
    nonce_sha256 TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, nonce_sha256)
);
CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);

CREATE TABLE gateway_keys (
    key_id TEXT PRIMARY KEY,
    public_key BYTEA NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION alliance_append_only();
