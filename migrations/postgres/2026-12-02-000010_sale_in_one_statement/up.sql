-- A sale's writes, after checking under the sale's locks that what its reads saw still holds.
--
-- Why: a sale on PostgreSQL was BEGIN, the prelude, the booking statement and COMMIT: four
-- round trips, each costing both ends CPU besides its statement (TLS, sockets, two thread
-- wake-ups). A sale that moves no points out of the member's balance now reads with the
-- prelude run on its own (autocommit: its locks end with it), is judged and computed in Rust,
-- and is booked by this function in one autocommit statement: two round trips. The function
-- takes the same locks in the same order as the prelude (so no new deadlock is possible),
-- re-reads what the checks depended on, and writes only if all of it is unchanged; otherwise
-- it writes nothing and says why, and the gateway reads again (after a few tries it falls back
-- to the locked path, where nothing can change between the reads and the writes).
--
-- The locked path (redemptions, whose member token is consumed inside the transaction; batch
-- items) calls this function too, inside its transaction, holding the locks already: the
-- checks then pass by construction, and the writes live in one place.
--
-- outcome: 'booked'; 'in-flight' (another request holds the Idempotency-Key); 'changed' (an
-- answer is now stored under the key, the partner_txn_id is now recorded, a day closed, or the
-- member's tier, status, birth month or balance moved). Only 'booked' wrote anything.
CREATE FUNCTION alliance_book_sale(
    -- What the sale's reads saw (`Transaction::sale_prelude`).
    p_answer_lock BIGINT, p_answer_key TEXT, p_now TIMESTAMP,
    p_booking_lock BIGINT, p_record_lock BIGINT, p_last_closed DATE,
    p_member_id BIGINT, p_tier TEXT, p_status TEXT, p_birth_month INTEGER, p_balance BIGINT,
    -- The sale (PostgreSQL links it into the chain after it commits: seq and line_hash NULL).
    p_txn_id TEXT, p_partner TEXT, p_partner_txn_id TEXT, p_member_ref TEXT, p_store_id TEXT,
    p_occurred_at TIMESTAMP, p_business_date DATE, p_late BOOLEAN,
    p_gross_fen BIGINT, p_discount_fen BIGINT, p_redeem_points BIGINT, p_redeem_value_fen BIGINT,
    p_paid_fen BIGINT, p_points_earned BIGINT, p_points_balance BIGINT, p_offer_version BIGINT,
    p_request_digest TEXT, p_created_at TIMESTAMP, p_remember_ref BOOLEAN,
    -- Its ledger entries, in order.
    p_accounts TEXT[], p_members BIGINT[], p_amounts BIGINT[],
    -- The answer stored under p_answer_key (when it is given).
    p_request_sha256 TEXT, p_response_status INTEGER, p_response_body TEXT, p_expires_at TIMESTAMP,
    OUT outcome TEXT, OUT entries BIGINT, OUT sales BIGINT, OUT answers BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_tier TEXT;
    v_status TEXT;
    v_birth_month INTEGER;
    v_balance BIGINT;
BEGIN
    entries := 0;
    sales := 0;
    answers := 0;
    -- The same locks, in the same order, as alliance_sale_prelude. Each read below takes a
    -- fresh snapshot (a VOLATILE function under READ COMMITTED), so it sees every commit made
    -- before the lock ahead of it was granted.
    IF p_answer_key IS NOT NULL THEN
        IF NOT pg_try_advisory_xact_lock(p_answer_lock) THEN
            outcome := 'in-flight';
            RETURN;
        END IF;
        PERFORM 1 FROM idempotency_keys k
        WHERE k.partner_code = p_partner AND k.idempotency_key = p_answer_key
          AND k.expires_at > p_now;
        IF FOUND THEN
            outcome := 'changed';
            RETURN;
        END IF;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(p_booking_lock);
    PERFORM pg_advisory_xact_lock(p_record_lock);
    IF (SELECT max(d.business_date) FROM business_days d WHERE d.status = 'closed')
        IS DISTINCT FROM p_last_closed
    THEN
        outcome := 'changed';
        RETURN;
    END IF;
    PERFORM 1 FROM transactions t
    WHERE t.partner_code = p_partner AND t.partner_txn_id = p_partner_txn_id;
    IF FOUND THEN
        outcome := 'changed';
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(alliance_member_lock(p_member_id));
    SELECT m.tier, m.status, m.birth_month INTO v_tier, v_status, v_birth_month
    FROM members m WHERE m.id = p_member_id;
    SELECT COALESCE(SUM(e.amount_points), 0)::BIGINT INTO v_balance
    FROM ledger_entries e WHERE e.member_id = p_member_id;
    IF v_tier IS DISTINCT FROM p_tier OR v_status IS DISTINCT FROM p_status
        OR v_birth_month IS DISTINCT FROM p_birth_month OR v_balance IS DISTINCT FROM p_balance
    THEN
        outcome := 'changed';
        RETURN;
    END IF;
    -- The writes. Data-modifying CTEs all run to completion, whether or not the final SELECT
    -- reads them; the journal's CTE writes nothing when no points move (no entries).
    WITH r AS (INSERT INTO member_refs (partner_code, member_ref, member_id, created_at)
               SELECT p_partner, p_member_ref, p_member_id, p_created_at WHERE p_remember_ref
               ON CONFLICT DO NOTHING),
         j AS (INSERT INTO ledger_journals (kind, reference, created_at)
               SELECT 'sale', p_txn_id, p_created_at WHERE cardinality(p_accounts) > 0
               RETURNING id),
         e AS (INSERT INTO ledger_entries (journal_id, account, member_id, amount_points,
                                           created_at)
               SELECT j.id, x.account, x.member_id, x.amount_points, p_created_at
               FROM j, unnest(p_accounts, p_members, p_amounts) WITH ORDINALITY
                    AS x(account, member_id, amount_points, n)
               ORDER BY x.n RETURNING 1),
         t AS (INSERT INTO transactions (txn_id, partner_code, partner_txn_id, member_id,
               member_ref, store_id, occurred_at, business_date, late, gross_fen,
               discount_fen, redeem_points, redeem_value_fen, paid_fen, points_earned,
               points_balance, offer_version, request_digest, seq, line_hash, created_at)
               VALUES (p_txn_id, p_partner, p_partner_txn_id, p_member_id, p_member_ref,
               p_store_id, p_occurred_at, p_business_date, p_late, p_gross_fen,
               p_discount_fen, p_redeem_points, p_redeem_value_fen, p_paid_fen,
               p_points_earned, p_points_balance, p_offer_version, p_request_digest, NULL,
               NULL, p_created_at) RETURNING 1),
         a AS (INSERT INTO idempotency_keys (partner_code, idempotency_key, request_sha256,
               response_status, response_body, created_at, expires_at)
               SELECT p_partner, p_answer_key, p_request_sha256, p_response_status,
                      p_response_body, p_created_at, p_expires_at
               WHERE p_answer_key IS NOT NULL
               ON CONFLICT (partner_code, idempotency_key) DO UPDATE SET
               request_sha256 = excluded.request_sha256,
               response_status = excluded.response_status,
               response_body = excluded.response_body,
               created_at = excluded.created_at, expires_at = excluded.expires_at
               RETURNING 1)
    SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM t), (SELECT count(*) FROM a)
    INTO entries, sales, answers;
    outcome := 'booked';
END;
$$;
