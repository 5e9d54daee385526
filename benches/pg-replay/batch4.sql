\set m random(0, 59999)
\set k random(1, 10000000000000)
WITH n AS (INSERT INTO request_nonces (key_id, nonce_sha256, expires_at) VALUES ('kid-1', md5((:k * 4 + 0)::text), now()::timestamp + interval '10 min') ON CONFLICT DO NOTHING RETURNING 1), a AS (SELECT set_config('synchronous_commit', 'off', true)) SELECT (SELECT count(*) FROM n) AS inserted, g.generation FROM registry_generation g, a WHERE g.id = 1;
WITH n AS (INSERT INTO request_nonces (key_id, nonce_sha256, expires_at) VALUES ('kid-1', md5((:k * 4 + 1)::text), now()::timestamp + interval '10 min') ON CONFLICT DO NOTHING RETURNING 1), a AS (SELECT set_config('synchronous_commit', 'off', true)) SELECT (SELECT count(*) FROM n) AS inserted, g.generation FROM registry_generation g, a WHERE g.id = 1;
WITH n AS (INSERT INTO request_nonces (key_id, nonce_sha256, expires_at) VALUES ('kid-1', md5((:k * 4 + 2)::text), now()::timestamp + interval '10 min') ON CONFLICT DO NOTHING RETURNING 1), a AS (SELECT set_config('synchronous_commit', 'off', true)) SELECT (SELECT count(*) FROM n) AS inserted, g.generation FROM registry_generation g, a WHERE g.id = 1;
WITH n AS (INSERT INTO request_nonces (key_id, nonce_sha256, expires_at) VALUES ('kid-1', md5((:k * 4 + 3)::text), now()::timestamp + interval '10 min') ON CONFLICT DO NOTHING RETURNING 1), a AS (SELECT set_config('synchronous_commit', 'off', true)) SELECT (SELECT count(*) FROM n) AS inserted, g.generation FROM registry_generation g, a WHERE g.id = 1;
BEGIN;
SELECT replay_prelude_w(:k, :m, 4);
SELECT replay_book_batch(:k, :m, 4);
COMMIT;
