-- Fails while a record is still unlinked: run `alliance-gateway verify-chain <CODE>` (which
-- links them) for each partner first.
DROP TRIGGER transactions_append_only ON transactions;
DROP TRIGGER reversals_append_only ON reversals;
CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON transactions
FOR EACH ROW EXECUTE FUNCTION alliance_append_only();
CREATE TRIGGER reversals_append_only BEFORE UPDATE OR DELETE ON reversals
FOR EACH ROW EXECUTE FUNCTION alliance_append_only();
DROP FUNCTION alliance_append_only_but_link();
DROP INDEX reversals_unlinked;
DROP INDEX transactions_unlinked;
ALTER TABLE reversals DROP CONSTRAINT reversals_link_whole;
ALTER TABLE transactions DROP CONSTRAINT transactions_link_whole;
ALTER TABLE reversals ALTER COLUMN seq SET NOT NULL, ALTER COLUMN line_hash SET NOT NULL;
ALTER TABLE transactions ALTER COLUMN seq SET NOT NULL, ALTER COLUMN line_hash SET NOT NULL;
