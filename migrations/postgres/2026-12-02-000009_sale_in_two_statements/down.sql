CREATE OR REPLACE FUNCTION alliance_append_only_but_link() RETURNS trigger AS $$
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
DROP FUNCTION alliance_sale_prelude(BIGINT, TEXT, TIMESTAMP, BIGINT, BIGINT, TEXT, TEXT, TEXT, TEXT);
DROP FUNCTION alliance_member_lock(BIGINT);
