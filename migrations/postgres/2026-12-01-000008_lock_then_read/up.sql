-- A lock and the reads that must follow it, in one round trip. A booking used to send each lock
-- and each read as a statement of its own, because a read in the same statement as the lock
-- would use the statement's snapshot, taken before the lock was granted, and could miss what
-- the previous holder committed. A VOLATILE PL/pgSQL function takes a fresh snapshot for each
-- statement it runs (READ COMMITTED), so its reads after the lock see every commit made before
-- the lock was granted: the same guarantee as separate statements, one round trip instead of
-- two or three. Called from src/db (ledger.rs, transactions.rs, idempotency_keys.rs).

-- The member's balance lock (locks::member), then the balance.
CREATE FUNCTION alliance_lock_balance(p_lock BIGINT, p_member BIGINT) RETURNS BIGINT
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    RETURN (SELECT COALESCE(SUM(amount_points), 0)::BIGINT
            FROM ledger_entries WHERE member_id = p_member);
END;
$$;

-- The booking lock shared (a day cannot close meanwhile), the partner record's lock, then the
-- last closed day and the sale already recorded under this partner_txn_id, if any.
CREATE FUNCTION alliance_lock_booking(
    p_booking_lock BIGINT, p_record_lock BIGINT, p_partner TEXT, p_partner_txn_id TEXT,
    OUT last_closed DATE, OUT existing_txn_id TEXT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(p_booking_lock);
    PERFORM pg_advisory_xact_lock(p_record_lock);
    SELECT max(d.business_date) INTO last_closed FROM business_days d WHERE d.status = 'closed';
    SELECT t.txn_id INTO existing_txn_id FROM transactions t
    WHERE t.partner_code = p_partner AND t.partner_txn_id = p_partner_txn_id;
END;
$$;

-- The Idempotency-Key's lock if free (locks::idempotency), then the live answer stored under
-- the key, if any. `locked` false: another request holds the key; nothing was read.
CREATE FUNCTION alliance_try_lock_answer(
    p_lock BIGINT, p_partner TEXT, p_key TEXT, p_now TIMESTAMP,
    OUT locked BOOLEAN, OUT request_sha256 TEXT, OUT response_status INTEGER,
    OUT response_body TEXT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    locked := pg_try_advisory_xact_lock(p_lock);
    IF locked THEN
        SELECT k.request_sha256, k.response_status, k.response_body
        INTO request_sha256, response_status, response_body
        FROM idempotency_keys k
        WHERE k.partner_code = p_partner AND k.idempotency_key = p_key AND k.expires_at > p_now;
    END IF;
END;
$$;
