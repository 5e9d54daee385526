-- Mirrors the PostgreSQL migration of this name, which adds the function that checks and books
-- a sale in one autocommit statement. SQLite has no round trips and its single writer needs no
-- locks: nothing changes here.
SELECT 1;
