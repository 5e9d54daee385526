-- One row per settled business day and version: the unique key is what makes one instance,
-- and only one, settle a day. `snapshot_json` holds what the files are a function of besides
-- the records (partner names and terms in force, timezone, BOM setting, gateway key, chain
-- heads at closing), so a rerun rewrites byte-identical files.
CREATE TABLE settlement_runs (
    business_date DATE NOT NULL,
    version BIGINT NOT NULL CHECK (version >= 1),
    closed_at TIMESTAMP NOT NULL,
    snapshot_json TEXT NOT NULL,
    -- Partner code → the reconciliation upload this version matched against.
    recon_json TEXT NOT NULL,
    manifest_sha256 TEXT,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (business_date, version)
);

-- Every reconciliation upload a partner made, kept for audit; the latest for a day counts.
CREATE TABLE reconciliation_uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    partner_code TEXT NOT NULL REFERENCES partners (code),
    business_date DATE NOT NULL,
    rows BIGINT NOT NULL,
    body_sha256 TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX reconciliation_uploads_day ON reconciliation_uploads (business_date, partner_code, id);
