-- Foundation schema (SQLite). Mirrors migrations/postgres; types stay portable:
-- BIGINT/INTEGER, TEXT, BLOB, TIMESTAMP (UTC), DATE, BOOLEAN.
CREATE TABLE alliance (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    name TEXT NOT NULL,
    timezone TEXT NOT NULL,
    first_business_day DATE NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE partners (
    code TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    contact_email TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    status_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Every certificate the CA issued to an identity; fingerprints are checked on every request.
CREATE TABLE certificates (
    serial_hex TEXT PRIMARY KEY NOT NULL,
    identity TEXT NOT NULL,
    fingerprint_sha256 TEXT NOT NULL UNIQUE,
    not_before TIMESTAMP NOT NULL,
    not_after TIMESTAMP NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX certificates_identity ON certificates (identity);

-- Public keys only: the gateway never holds a partner's private key.
CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY NOT NULL,
    identity TEXT NOT NULL,
    alg TEXT NOT NULL CHECK (alg IN ('ed25519', 'ecdsa-p256-sha256')),
    public_key BLOB NOT NULL,
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
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    card_no TEXT NOT NULL UNIQUE,
    tier TEXT NOT NULL CHECK (tier IN ('regular', 'silver', 'gold', 'platinum')),
    status TEXT NOT NULL CHECK (status IN ('active', 'frozen', 'closed')),
    birth_month INTEGER CHECK (birth_month BETWEEN 1 AND 12),
    phone_hash TEXT UNIQUE,
    phone_key_version INTEGER,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- The per-partner pseudonyms handed out by verify, so a partner can name a member by ref.
CREATE TABLE member_refs (
    partner_code TEXT NOT NULL REFERENCES partners (code),
    member_ref TEXT NOT NULL,
    member_id BIGINT NOT NULL REFERENCES members (id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (partner_code, member_ref)
);
CREATE UNIQUE INDEX member_refs_member ON member_refs (partner_code, member_id);

-- Double-entry points ledger: every journal's entries sum to zero; balances are sums.
CREATE TABLE ledger_journals (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (kind, reference)
);

CREATE TABLE ledger_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    journal_id BIGINT NOT NULL REFERENCES ledger_journals (id),
    account TEXT NOT NULL,
    member_id BIGINT REFERENCES members (id),
    amount_points BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ledger_entries_member ON ledger_entries (member_id);
CREATE INDEX ledger_entries_journal ON ledger_entries (journal_id);

CREATE TRIGGER ledger_entries_append_only_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;
CREATE TRIGGER ledger_entries_append_only_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END;

-- Replay protection shared by every gateway instance. One insert per request: WITHOUT ROWID
-- keeps it to the primary-key b-tree plus the expiry index.
CREATE TABLE request_nonces (
    key_id TEXT NOT NULL,
    nonce_sha256 TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (key_id, nonce_sha256)
) WITHOUT ROWID;
CREATE INDEX request_nonces_expiry ON request_nonces (expires_at);

CREATE TABLE gateway_keys (
    key_id TEXT PRIMARY KEY NOT NULL,
    public_key BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'retired')),
    created_at TIMESTAMP NOT NULL
);

-- Append-only, hash-chained record of admin and finance actions.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);
CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
