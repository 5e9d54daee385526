-- On PostgreSQL a sale or reversal is linked into its partner's hash chain just after its
-- booking commits, by the linker (src/transactions/chain.rs), so that a partner's bookings
-- no longer wait for each other's commits. Until then seq and line_hash are NULL.
ALTER TABLE transactions ALTER COLUMN seq DROP NOT NULL, ALTER COLUMN line_hash DROP NOT NULL;
ALTER TABLE reversals ALTER COLUMN seq DROP NOT NULL, ALTER COLUMN line_hash DROP NOT NULL;
ALTER TABLE transactions ADD CONSTRAINT transactions_link_whole
    CHECK ((seq IS NULL) = (line_hash IS NULL));
ALTER TABLE reversals ADD CONSTRAINT reversals_link_whole
    CHECK ((seq IS NULL) = (line_hash IS NULL));
-- What the linker looks for.
CREATE INDEX transactions_unlinked ON transactions (partner_code, created_at) WHERE seq IS NULL;
CREATE INDEX reversals_unlinked ON reversals (partner_code, created_at) WHERE seq IS NULL;

-- Still append-only, with one exception: the link is written once, into a record that has
-- none, and nothing else of the record changes.
CREATE FUNCTION alliance_append_only_but_link() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND OLD.seq IS NULL AND OLD.line_hash IS NULL
        AND NEW.seq IS NOT NULL AND NEW.line_hash IS NOT NULL
        AND (to_jsonb(NEW) - 'seq' - 'line_hash') = (to_jsonb(OLD) - 'seq' - 'line_hash')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER transactions_append_only ON transactions;
DROP TRIGGER reversals_append_only ON reversals;
CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
FOR EACH ROW EXECUTE FUNCTION alliance_append_only_but_link();
CREATE TRIGGER reversals_append_only BEFORE UPDATE OR DELETE ON reversals
FOR EACH ROW EXECUTE FUNCTION alliance_append_only_but_link();
