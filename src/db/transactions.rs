use super::schema::transactions;
use super::DbConn;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

/// A recorded sale. Append-only: triggers refuse UPDATE and DELETE.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = transactions)]
pub struct Transaction {
    pub txn_id: String,
    pub partner_code: String,
    pub partner_txn_id: String,
    pub member_id: i64,
    pub member_ref: String,
    pub store_id: String,
    pub occurred_at: NaiveDateTime,
    pub business_date: NaiveDate,
    pub late: bool,
    pub gross_fen: i64,
    pub discount_fen: i64,
    pub redeem_points: i64,
    pub redeem_value_fen: i64,
    pub paid_fen: i64,
    pub points_earned: i64,
    pub points_balance: i64,
    pub offer_version: i64,
    pub request_digest: String,
    /// The record's place in its partner's hash chain; `None` until it is linked (on
    /// PostgreSQL, shortly after the booking commits; see `transactions::chain`).
    pub seq: Option<i64>,
    pub line_hash: Option<String>,
    pub created_at: NaiveDateTime,
}

impl Transaction {
    /// Inserts the sale. Hand-written so that it stays prepared (see `db::prepared`).
    pub fn insert(conn: &mut DbConn, t: &Transaction) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Bool, Date, Nullable, Text, Timestamp};
        let insert = super::prepared::prepared(
            "INSERT INTO transactions (txn_id, partner_code, partner_txn_id, member_id, \
             member_ref, store_id, occurred_at, business_date, late, gross_fen, discount_fen, \
             redeem_points, redeem_value_fen, paid_fen, points_earned, points_balance, \
             offer_version, request_digest, seq, line_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21)",
        )
        .bind::<Text, _>(&t.txn_id)
        .bind::<Text, _>(&t.partner_code)
        .bind::<Text, _>(&t.partner_txn_id)
        .bind::<BigInt, _>(t.member_id)
        .bind::<Text, _>(&t.member_ref)
        .bind::<Text, _>(&t.store_id)
        .bind::<Timestamp, _>(t.occurred_at)
        .bind::<Date, _>(t.business_date)
        .bind::<Bool, _>(t.late)
        .bind::<BigInt, _>(t.gross_fen)
        .bind::<BigInt, _>(t.discount_fen)
        .bind::<BigInt, _>(t.redeem_points)
        .bind::<BigInt, _>(t.redeem_value_fen)
        .bind::<BigInt, _>(t.paid_fen)
        .bind::<BigInt, _>(t.points_earned)
        .bind::<BigInt, _>(t.points_balance)
        .bind::<BigInt, _>(t.offer_version)
        .bind::<Text, _>(&t.request_digest)
        .bind::<Nullable<BigInt>, _>(t.seq)
        .bind::<Nullable<Text>, _>(&t.line_hash)
        .bind::<Timestamp, _>(t.created_at);
        concrete!(conn, |c| insert.execute(c).map(|_| ()))
    }

    /// A partner's own transaction; another partner's id is simply not found.
    pub fn find(
        conn: &mut DbConn,
        partner: &str,
        txn_id: &str,
    ) -> QueryResult<Option<Transaction>> {
        concrete!(conn, |c| transactions::table
            .filter(transactions::txn_id.eq(txn_id))
            .filter(transactions::partner_code.eq(partner))
            .select(Transaction::as_select())
            .first(c)
            .optional())
    }

    pub fn find_by_partner_txn_id(
        conn: &mut DbConn,
        partner: &str,
        partner_txn_id: &str,
    ) -> QueryResult<Option<Transaction>> {
        concrete!(conn, |c| transactions::table
            .filter(transactions::partner_code.eq(partner))
            .filter(transactions::partner_txn_id.eq(partner_txn_id))
            .select(Transaction::as_select())
            .first(c)
            .optional())
    }

    /// One page of a partner's transactions booked on `day`, in `txn_id` order after `after`.
    pub fn page(
        conn: &mut DbConn,
        partner: &str,
        day: NaiveDate,
        after: Option<&str>,
        limit: i64,
    ) -> QueryResult<Vec<Transaction>> {
        let mut q = transactions::table
            .filter(transactions::partner_code.eq(partner))
            .filter(transactions::business_date.eq(day))
            .into_boxed();
        if let Some(after) = after {
            q = q.filter(transactions::txn_id.gt(after.to_owned()));
        }
        q.order(transactions::txn_id.asc())
            .limit(limit)
            .select(Transaction::as_select())
            .load(conn)
    }

    /// Every transaction of a partner in chain order (for `verify-chain`).
    pub fn chain_of(conn: &mut DbConn, partner: &str) -> QueryResult<Vec<Transaction>> {
        transactions::table
            .filter(transactions::partner_code.eq(partner))
            .filter(transactions::seq.is_not_null())
            .order(transactions::seq.asc())
            .select(Transaction::as_select())
            .load(conn)
    }

    /// Up to `limit` of a partner's sales not yet linked into its chain, oldest first.
    pub fn unlinked(conn: &mut DbConn, partner: &str, limit: i64) -> QueryResult<Vec<Transaction>> {
        transactions::table
            .filter(transactions::partner_code.eq(partner))
            .filter(transactions::seq.is_null())
            .order((transactions::created_at.asc(), transactions::txn_id.asc()))
            .limit(limit)
            .select(Transaction::as_select())
            .load(conn)
    }

    /// Partners with records not yet linked into their chain.
    pub fn partners_unlinked(conn: &mut DbConn) -> QueryResult<Vec<String>> {
        transactions::table
            .filter(transactions::seq.is_null())
            .select(transactions::partner_code)
            .distinct()
            .load(conn)
    }

    /// Up to `limit` of a partner's sales booked on `day` after chain position `after_seq`, in
    /// chain order: statements read a day in pages, never whole.
    pub fn booked_page(
        conn: &mut DbConn,
        partner: &str,
        day: NaiveDate,
        after_seq: i64,
        limit: i64,
    ) -> QueryResult<Vec<Transaction>> {
        concrete!(conn, |c| transactions::table
            .filter(transactions::partner_code.eq(partner))
            .filter(transactions::business_date.eq(day))
            .filter(transactions::seq.gt(after_seq))
            .order(transactions::seq.asc())
            .limit(limit)
            .select(Transaction::as_select())
            .load(c))
    }

    /// A sale by its gateway id, whoever's it is (for statements).
    pub fn by_id(conn: &mut DbConn, txn_id: &str) -> QueryResult<Option<Transaction>> {
        transactions::table
            .find(txn_id)
            .select(Transaction::as_select())
            .first(conn)
            .optional()
    }

    /// Partners with sales booked on `day`.
    pub fn partners_on(conn: &mut DbConn, day: NaiveDate) -> QueryResult<Vec<String>> {
        transactions::table
            .filter(transactions::business_date.eq(day))
            .select(transactions::partner_code)
            .distinct()
            .load(conn)
    }

    /// The earliest business day anything was booked on.
    pub fn first_day(conn: &mut DbConn) -> QueryResult<Option<NaiveDate>> {
        transactions::table
            .select(diesel::dsl::min(transactions::business_date))
            .first(conn)
    }
}
