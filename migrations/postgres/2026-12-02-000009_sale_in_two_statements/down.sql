DROP FUNCTION alliance_sale_prelude(BIGINT, BIGINT, TEXT, TEXT, TEXT, TEXT);
DROP FUNCTION alliance_member_lock(BIGINT);
