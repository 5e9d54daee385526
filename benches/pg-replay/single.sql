\set m random(0, 59999)
\set k random(1, 100000000000000)
WITH n AS (INSERT INTO request_nonces (key_id, nonce_sha256, expires_at) VALUES ('kid-1', md5(:k::text), now()::timestamp + interval '10 min') ON CONFLICT DO NOTHING RETURNING 1), a AS (SELECT set_config('synchronous_commit', 'off', true)) SELECT (SELECT count(*) FROM n) AS inserted, g.generation FROM registry_generation g, a WHERE g.id = 1;
BEGIN;
SELECT * FROM alliance_sale_prelude(:k, 'idem-' || :k, now()::timestamp, 12345, :k + 1, 'P-RST-001', 'ptx-' || :k, '77' || lpad(:m::text, 8, '0'), NULL);
SELECT replay_book_single(:k, :m);
COMMIT;
