-- Mirrors the PostgreSQL migration of this name, which adds the functions that let a sale read
-- and lock in one round trip. SQLite has no round trips and its single writer needs no locks:
-- nothing changes here.
SELECT 1;
