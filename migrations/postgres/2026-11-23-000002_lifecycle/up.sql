-- Finance staff: their certificates and signing keys live in certificates/signing_keys under
-- the identity urn:alliance:finance:<name>; this row says whether the person may still call.
CREATE TABLE finance_users (
    name TEXT PRIMARY KEY NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'removed')),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Why a certificate was revoked, for `partner show` and the audit trail.
ALTER TABLE certificates ADD COLUMN revocation_reason TEXT;
