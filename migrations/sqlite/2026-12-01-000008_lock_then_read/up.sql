-- Mirrors the PostgreSQL migration of this name, which adds functions that take a lock and
-- read in one round trip. SQLite's single writer needs no locks and has no round trips:
-- nothing changes here.
SELECT 1;
