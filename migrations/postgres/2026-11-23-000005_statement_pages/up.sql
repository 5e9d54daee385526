-- Statements read a partner's day in chain order, a page at a time.
CREATE INDEX transactions_day_seq ON transactions (partner_code, business_date, seq);
CREATE INDEX reversals_day_seq ON reversals (partner_code, business_date, seq);
