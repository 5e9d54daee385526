DROP INDEX reversals_day_seq;
DROP INDEX transactions_day_seq;
