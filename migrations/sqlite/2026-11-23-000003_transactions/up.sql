-- Business days that are closed (contract section 8). Booking reads this inside the same
-- serialised transaction that closes a day; a record for a closed day goes to the earliest
-- open day, marked late.
CREATE TABLE business_days (
    business_date DATE PRIMARY KEY NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    closed_at TIMESTAMP
);

-- Sales as recorded, with the amounts the gateway computed and the offer version that judged
-- them. Immutable: reversals are rows of their own.
CREATE TABLE transactions (
    txn_id TEXT PRIMARY KEY NOT NULL,
    partner_code TEXT NOT NULL REFERENCES partners (code),
    partner_txn_id TEXT NOT NULL,
    member_id BIGINT NOT NULL REFERENCES members (id),
    member_ref TEXT NOT NULL,
    store_id TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    business_date DATE NOT NULL,
    late BOOLEAN NOT NULL,
    gross_fen BIGINT NOT NULL CHECK (gross_fen >= 1),
    discount_fen BIGINT NOT NULL CHECK (discount_fen >= 0),
    redeem_points BIGINT NOT NULL CHECK (redeem_points >= 0),
    redeem_value_fen BIGINT NOT NULL CHECK (redeem_value_fen >= 0),
    paid_fen BIGINT NOT NULL CHECK (paid_fen >= 0),
    points_earned BIGINT NOT NULL CHECK (points_earned >= 0),
    points_balance BIGINT NOT NULL,
    offer_version BIGINT NOT NULL,
    request_digest TEXT NOT NULL,
    seq BIGINT NOT NULL,
    line_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (partner_code, partner_txn_id),
    UNIQUE (partner_code, seq)
);
CREATE INDEX transactions_day ON transactions (partner_code, business_date, txn_id);

CREATE TABLE reversals (
    reversal_id TEXT PRIMARY KEY NOT NULL,
    txn_id TEXT NOT NULL REFERENCES transactions (txn_id),
    partner_code TEXT NOT NULL REFERENCES partners (code),
    partner_reversal_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    business_date DATE NOT NULL,
    late BOOLEAN NOT NULL,
    gross_fen BIGINT NOT NULL CHECK (gross_fen >= 1),
    discount_fen BIGINT NOT NULL CHECK (discount_fen >= 0),
    redeem_points BIGINT NOT NULL CHECK (redeem_points >= 0),
    redeem_value_fen BIGINT NOT NULL CHECK (redeem_value_fen >= 0),
    points_clawed_back BIGINT NOT NULL CHECK (points_clawed_back >= 0),
    points_balance BIGINT NOT NULL,
    request_digest TEXT NOT NULL,
    seq BIGINT NOT NULL,
    line_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (txn_id, partner_reversal_id),
    UNIQUE (partner_code, seq)
);
CREATE INDEX reversals_day ON reversals (partner_code, business_date, reversal_id);

-- The head of each partner's hash chain over its sales and reversals.
CREATE TABLE partner_chains (
    partner_code TEXT PRIMARY KEY NOT NULL REFERENCES partners (code),
    seq BIGINT NOT NULL,
    line_hash TEXT NOT NULL
);

-- Successful (2xx) answers stored under their Idempotency-Key, per partner.
CREATE TABLE idempotency_keys (
    partner_code TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (partner_code, idempotency_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Single-use member tokens that authorise a redemption; only their hash is stored.
CREATE TABLE member_tokens (
    member_id BIGINT NOT NULL REFERENCES members (id),
    token_sha256 TEXT NOT NULL,
    issuer TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    used_by_txn TEXT,
    PRIMARY KEY (member_id, token_sha256)
);
CREATE INDEX member_tokens_expiry ON member_tokens (expires_at);

CREATE TRIGGER transactions_append_only_update BEFORE UPDATE ON transactions
BEGIN SELECT RAISE(ABORT, 'transactions is append-only'); END;
CREATE TRIGGER transactions_append_only_delete BEFORE DELETE ON transactions
BEGIN SELECT RAISE(ABORT, 'transactions is append-only'); END;
CREATE TRIGGER reversals_append_only_update BEFORE UPDATE ON reversals
BEGIN SELECT RAISE(ABORT, 'reversals is append-only'); END;
CREATE TRIGGER reversals_append_only_delete BEFORE DELETE ON reversals
BEGIN SELECT RAISE(ABORT, 'reversals is append-only'); END;
