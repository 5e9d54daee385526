// One portable schema for both backends: BigInt, Integer, Text, Binary, Timestamp (UTC), Date.
diesel::table! {
    alliance (id) {
        id -> Integer,
        name -> Text,
        timezone -> Text,
        first_business_day -> Date,
        created_at -> Timestamp,
    }
}

diesel::table! {
    partners (code) {
        code -> Text,
        name -> Text,
        category -> Text,
        capabilities -> Text,
        contact_email -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    certificates (serial_hex) {
        serial_hex -> Text,
        identity -> Text,
        fingerprint_sha256 -> Text,
        not_before -> Timestamp,
        not_after -> Timestamp,
        status -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revocation_reason -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (key_id) {
        key_id -> Text,
        identity -> Text,
        alg -> Text,
        public_key -> Binary,
        status -> Text,
        retire_after -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    offer_versions (partner_code, version) {
        partner_code -> Text,
        version -> BigInt,
        effective_from -> Date,
        terms_json -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    members (id) {
        id -> BigInt,
        card_no -> Text,
        tier -> Text,
        status -> Text,
        birth_month -> Nullable<Integer>,
        phone_hash -> Nullable<Text>,
        phone_key_version -> Nullable<Integer>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    member_refs (partner_code, member_ref) {
        partner_code -> Text,
        member_ref -> Text,
        member_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    ledger_journals (id) {
        id -> BigInt,
        kind -> Text,
        reference -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    ledger_entries (id) {
        id -> BigInt,
        journal_id -> BigInt,
        account -> Text,
        member_id -> Nullable<BigInt>,
        amount_points -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    request_nonces (key_id, nonce_sha256) {
        key_id -> Text,
        nonce_sha256 -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    gateway_keys (key_id) {
        key_id -> Text,
        public_key -> Binary,
        status -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        subject -> Text,
        detail -> Text,
        prev_hash -> Text,
        hash -> Text,
    }
}

diesel::table! {
    finance_users (name) {
        name -> Text,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    business_days (business_date) {
        business_date -> Date,
        status -> Text,
        closed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    transactions (txn_id) {
        txn_id -> Text,
        partner_code -> Text,
        partner_txn_id -> Text,
        member_id -> BigInt,
        member_ref -> Text,
        store_id -> Text,
        occurred_at -> Timestamp,
        business_date -> Date,
        late -> Bool,
        gross_fen -> BigInt,
        discount_fen -> BigInt,
        redeem_points -> BigInt,
        redeem_value_fen -> BigInt,
        paid_fen -> BigInt,
        points_earned -> BigInt,
        points_balance -> BigInt,
        offer_version -> BigInt,
        request_digest -> Text,
        seq -> Nullable<BigInt>,
        line_hash -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    reversals (reversal_id) {
        reversal_id -> Text,
        txn_id -> Text,
        partner_code -> Text,
        partner_reversal_id -> Text,
        reason -> Text,
        occurred_at -> Timestamp,
        business_date -> Date,
        late -> Bool,
        gross_fen -> BigInt,
        discount_fen -> BigInt,
        redeem_points -> BigInt,
        redeem_value_fen -> BigInt,
        points_clawed_back -> BigInt,
        points_balance -> BigInt,
        request_digest -> Text,
        seq -> Nullable<BigInt>,
        line_hash -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    partner_chains (partner_code) {
        partner_code -> Text,
        seq -> BigInt,
        line_hash -> Text,
    }
}

diesel::table! {
    idempotency_keys (partner_code, idempotency_key) {
        partner_code -> Text,
        idempotency_key -> Text,
        request_sha256 -> Text,
        response_status -> Integer,
        response_body -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    member_tokens (member_id, token_sha256) {
        member_id -> BigInt,
        token_sha256 -> Text,
        issuer -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        used_by_txn -> Nullable<Text>,
    }
}

diesel::table! {
    settlement_runs (business_date, version) {
        business_date -> Date,
        version -> BigInt,
        closed_at -> Timestamp,
        snapshot_json -> Text,
        recon_json -> Text,
        manifest_sha256 -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    reconciliation_uploads (id) {
        id -> BigInt,
        partner_code -> Text,
        business_date -> Date,
        rows -> BigInt,
        body_sha256 -> Text,
        body -> Text,
        created_at -> Timestamp,
        body_bytes -> BigInt,
    }
}

diesel::joinable!(reversals -> transactions (txn_id));
diesel::joinable!(offer_versions -> partners (partner_code));
diesel::joinable!(member_refs -> members (member_id));
diesel::joinable!(ledger_entries -> ledger_journals (journal_id));

diesel::table! {
    registry_generation (id) {
        id -> Integer,
        generation -> BigInt,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    alliance,
    partners,
    certificates,
    signing_keys,
    offer_versions,
    members,
    member_refs,
    ledger_journals,
    ledger_entries,
    request_nonces,
    gateway_keys,
    audit_log,
    finance_users,
    business_days,
    transactions,
    reversals,
    partner_chains,
    registry_generation,
    idempotency_keys,
    member_tokens,
    settlement_runs,
    reconciliation_uploads,
);
