DROP FUNCTION alliance_try_lock_answer(BIGINT, TEXT, TEXT, TIMESTAMP);
DROP FUNCTION alliance_lock_booking(BIGINT, BIGINT, TEXT, TEXT);
DROP FUNCTION alliance_lock_balance(BIGINT, BIGINT);
