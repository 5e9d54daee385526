-- Replay-only functions (never part of the gateway): a sale's booking, and a batch of N sales'
-- prelude and booking, as one statement each. See README.md beside this file.
DROP FUNCTION IF EXISTS replay_prelude_batch;
CREATE FUNCTION replay_prelude_batch(p_answer_locks BIGINT[], p_answer_keys TEXT[], p_now TIMESTAMP,
    p_booking_lock BIGINT, p_record_locks BIGINT[], p_partner TEXT, p_ptxn TEXT[], p_cards TEXT[])
RETURNS TABLE (n BIGINT, existing TEXT, member_id BIGINT, tier TEXT, status TEXT, birth_month INT, balance BIGINT, last_closed DATE)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  lc DATE;
BEGIN
  PERFORM pg_try_advisory_xact_lock(x) FROM unnest(p_answer_locks) x;
  PERFORM 1 FROM idempotency_keys k WHERE k.partner_code = p_partner AND k.idempotency_key = ANY(p_answer_keys) AND k.expires_at > p_now;
  PERFORM pg_advisory_xact_lock_shared(p_booking_lock);
  PERFORM pg_advisory_xact_lock(s.x) FROM (SELECT x FROM unnest(p_record_locks) x ORDER BY x) s;
  SELECT max(d.business_date) INTO lc FROM business_days d WHERE d.status = 'closed';
  RETURN QUERY
    WITH v AS (SELECT * FROM unnest(p_ptxn, p_cards) WITH ORDINALITY AS v(ptxn, card, n)),
         m AS (SELECT v.n, (SELECT t.txn_id FROM transactions t WHERE t.partner_code = p_partner AND t.partner_txn_id = v.ptxn) AS existing,
                      mm.id, mm.tier, mm.status, mm.birth_month
               FROM v LEFT JOIN members mm ON mm.card_no = v.card),
         l AS MATERIALIZED (SELECT count(pg_advisory_xact_lock(alliance_member_lock(s.id))) AS c FROM (SELECT DISTINCT m.id FROM m WHERE m.id IS NOT NULL ORDER BY m.id) s),
         b AS (SELECT e.member_id AS id, sum(e.amount_points)::BIGINT AS bal FROM ledger_entries e, l WHERE l.c >= 0 AND e.member_id IN (SELECT m.id FROM m) GROUP BY e.member_id)
    SELECT m.n, m.existing, m.id, m.tier, m.status, m.birth_month, b.bal, lc FROM m LEFT JOIN b ON b.id = m.id ORDER BY m.n;
END;
$$;
CREATE OR REPLACE FUNCTION replay_book_single(k BIGINT, m BIGINT) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE r BIGINT;
BEGIN
WITH r AS (INSERT INTO member_refs (partner_code, member_ref, member_id, created_at) SELECT 'P-RST-001', 'ref-' || m, m + 7, now()::timestamp WHERE true ON CONFLICT DO NOTHING), j AS (INSERT INTO ledger_journals (kind, reference, created_at) SELECT 'sale', 'tx-' || k, now()::timestamp RETURNING id), e AS (INSERT INTO ledger_entries (journal_id, account, member_id, amount_points, created_at) SELECT j.id, e.account, e.member_id, e.amount_points, now()::timestamp FROM j, unnest(ARRAY['member:' || (m + 7), 'partner:P-RST-001:issued'], ARRAY[m + 7, NULL]::bigint[], ARRAY[100, -100]::bigint[]) WITH ORDINALITY AS e(account, member_id, amount_points, n) ORDER BY e.n RETURNING 1), t AS (INSERT INTO transactions (txn_id, partner_code, partner_txn_id, member_id, member_ref, store_id, occurred_at, business_date, late, gross_fen, discount_fen, redeem_points, redeem_value_fen, paid_fen, points_earned, points_balance, offer_version, request_digest, seq, line_hash, created_at) VALUES ('tx-' || k, 'P-RST-001', 'ptx-' || k, m + 7, 'ref-' || m, 'S1', now()::timestamp, current_date, false, 10000, 500, 0, 0, 9500, 100, 5100, 1, 'sha-256=:abcdefabcdefabcdefabcdefabcdefabcdefabcdefab=:', NULL, NULL, now()::timestamp) RETURNING 1), a AS (INSERT INTO idempotency_keys (partner_code, idempotency_key, request_sha256, response_status, response_body, created_at, expires_at) SELECT 'P-RST-001', 'idem-' || k, md5(k::text), 201, repeat('x', 600), now()::timestamp, now()::timestamp + interval '8 days' ON CONFLICT (partner_code, idempotency_key) DO UPDATE SET request_sha256 = excluded.request_sha256 RETURNING 1) SELECT (SELECT count(*) FROM e) + (SELECT count(*) FROM t) + (SELECT count(*) FROM a) INTO r;
RETURN r;
END $$;
CREATE OR REPLACE FUNCTION replay_book_batch(k BIGINT, m BIGINT, nn INT) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE r BIGINT;
BEGIN
WITH v AS (SELECT 'tx-' || (k * nn + g) AS txn_id, 'ptx-' || (k * nn + g) AS ptxn, 7 + ((m + g * 7001) % 60000) AS member_id, 'ref-' || ((m + g * 7001) % 60000) AS ref, (k * nn + g) AS kk FROM generate_series(0, nn - 1) g), r AS (INSERT INTO member_refs (partner_code, member_ref, member_id, created_at) SELECT 'P-RST-001', v.ref, v.member_id, now()::timestamp FROM v ON CONFLICT DO NOTHING), j AS (INSERT INTO ledger_journals (kind, reference, created_at) SELECT 'sale', v.txn_id, now()::timestamp FROM v RETURNING id, reference), e AS (INSERT INTO ledger_entries (journal_id, account, member_id, amount_points, created_at) SELECT j.id, x.account, x.member_id, x.amount, now()::timestamp FROM j JOIN v ON v.txn_id = j.reference CROSS JOIN LATERAL (VALUES ('member:' || v.member_id, v.member_id, 100::bigint), ('partner:P-RST-001:issued', NULL::bigint, -100::bigint)) x(account, member_id, amount) RETURNING 1), t AS (INSERT INTO transactions (txn_id, partner_code, partner_txn_id, member_id, member_ref, store_id, occurred_at, business_date, late, gross_fen, discount_fen, redeem_points, redeem_value_fen, paid_fen, points_earned, points_balance, offer_version, request_digest, seq, line_hash, created_at) SELECT v.txn_id, 'P-RST-001', v.ptxn, v.member_id, v.ref, 'S1', now()::timestamp, current_date, false, 10000, 500, 0, 0, 9500, 100, 5100, 1, 'sha-256=:abcdefabcdefabcdefabcdefabcdefabcdefabcdefab=:', NULL, NULL, now()::timestamp FROM v RETURNING 1), a AS (INSERT INTO idempotency_keys (partner_code, idempotency_key, request_sha256, response_status, response_body, created_at, expires_at) SELECT 'P-RST-001', 'idem-' || v.kk, md5(v.kk::text), 201, repeat('x', 600), now()::timestamp, now()::timestamp + interval '8 days' FROM v ON CONFLICT (partner_code, idempotency_key) DO UPDATE SET request_sha256 = excluded.request_sha256 RETURNING 1) SELECT (SELECT count(*) FROM e) + (SELECT count(*) FROM t) + (SELECT count(*) FROM a) INTO r;
RETURN r;
END $$;
CREATE OR REPLACE FUNCTION replay_prelude_w(k BIGINT, m BIGINT, nn INT) RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE r BIGINT;
BEGIN
SELECT count(*) INTO r FROM replay_prelude_batch(array(SELECT k * nn + g FROM generate_series(0, nn - 1) g), array(SELECT 'idem-' || (k * nn + g) FROM generate_series(0, nn - 1) g), now()::timestamp, 12345, array(SELECT k * nn + g + 1 FROM generate_series(0, nn - 1) g), 'P-RST-001', array(SELECT 'ptx-' || (k * nn + g) FROM generate_series(0, nn - 1) g), array(SELECT '77' || lpad(((m + g * 7001) % 60000)::text, 8, '0') FROM generate_series(0, nn - 1) g));
RETURN r;
END $$;
