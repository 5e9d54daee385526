-- Mirrors the PostgreSQL migration of this name, which lets seq and line_hash stay NULL until
-- the linker runs. SQLite links every record in its booking transaction, so its columns stay
-- NOT NULL and its tables strictly append-only: nothing changes here.
SELECT 1;
