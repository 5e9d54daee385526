use super::schema::reversals;
use super::DbConn;
use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

/// A recorded (partial or full) reversal of a sale. Append-only.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = reversals)]
pub struct Reversal {
    pub reversal_id: String,
    pub txn_id: String,
    pub partner_code: String,
    pub partner_reversal_id: String,
    pub reason: String,
    pub occurred_at: NaiveDateTime,
    pub business_date: NaiveDate,
    pub late: bool,
    pub gross_fen: i64,
    pub discount_fen: i64,
    pub redeem_points: i64,
    pub redeem_value_fen: i64,
    pub points_clawed_back: i64,
    pub points_balance: i64,
    pub request_digest: String,
    /// The record's place in its partner's hash chain; `None` until it is linked (on
    /// PostgreSQL, shortly after the booking commits; see `transactions::chain`).
    pub seq: Option<i64>,
    pub line_hash: Option<String>,
    pub created_at: NaiveDateTime,
}

impl Reversal {
    /// Inserts the reversal. Hand-written so that it stays prepared (see `db::prepared`).
    pub fn insert(conn: &mut DbConn, r: &Reversal) -> QueryResult<()> {
        use diesel::sql_types::{BigInt, Bool, Date, Nullable, Text, Timestamp};
        let insert = super::prepared::prepared(
            "INSERT INTO reversals (reversal_id, txn_id, partner_code, partner_reversal_id, \
             reason, occurred_at, business_date, late, gross_fen, discount_fen, redeem_points, \
             redeem_value_fen, points_clawed_back, points_balance, request_digest, seq, \
             line_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18)",
        )
        .bind::<Text, _>(&r.reversal_id)
        .bind::<Text, _>(&r.txn_id)
        .bind::<Text, _>(&r.partner_code)
        .bind::<Text, _>(&r.partner_reversal_id)
        .bind::<Text, _>(&r.reason)
        .bind::<Timestamp, _>(r.occurred_at)
        .bind::<Date, _>(r.business_date)
        .bind::<Bool, _>(r.late)
        .bind::<BigInt, _>(r.gross_fen)
        .bind::<BigInt, _>(r.discount_fen)
        .bind::<BigInt, _>(r.redeem_points)
        .bind::<BigInt, _>(r.redeem_value_fen)
        .bind::<BigInt, _>(r.points_clawed_back)
        .bind::<BigInt, _>(r.points_balance)
        .bind::<Text, _>(&r.request_digest)
        .bind::<Nullable<BigInt>, _>(r.seq)
        .bind::<Nullable<Text>, _>(&r.line_hash)
        .bind::<Timestamp, _>(r.created_at);
        concrete!(conn, |c| insert.execute(c).map(|_| ()))
    }

    /// The reversals of one sale, oldest first. By booking time, not `seq`: on PostgreSQL the
    /// newest may not be linked yet. (The linker links them in this order, and a sale's
    /// reversals are booked one at a time under the sale's lock, so the two orders agree.)
    pub fn of(conn: &mut DbConn, txn_id: &str) -> QueryResult<Vec<Reversal>> {
        reversals::table
            .filter(reversals::txn_id.eq(txn_id))
            .order((reversals::created_at.asc(), reversals::reversal_id.asc()))
            .select(Reversal::as_select())
            .load(conn)
    }

    pub fn chain_of(conn: &mut DbConn, partner: &str) -> QueryResult<Vec<Reversal>> {
        reversals::table
            .filter(reversals::partner_code.eq(partner))
            .filter(reversals::seq.is_not_null())
            .order(reversals::seq.asc())
            .select(Reversal::as_select())
            .load(conn)
    }

    /// Up to `limit` of a partner's reversals not yet linked into its chain whose sale is
    /// linked already, oldest first: a reversal never comes before its sale in the chain.
    pub fn unlinked(conn: &mut DbConn, partner: &str, limit: i64) -> QueryResult<Vec<Reversal>> {
        use super::schema::transactions;
        // A join, not `IN (linked sales)`: the unlinked reversals are few (a partial index),
        // each checked against its own sale, where the IN list grew with the partner's history.
        reversals::table
            .inner_join(transactions::table)
            .filter(reversals::partner_code.eq(partner))
            .filter(reversals::seq.is_null())
            .filter(transactions::seq.is_not_null())
            .order((reversals::created_at.asc(), reversals::reversal_id.asc()))
            .limit(limit)
            .select(Reversal::as_select())
            .load(conn)
    }

    /// Partners with records not yet linked into their chain.
    pub fn partners_unlinked(conn: &mut DbConn) -> QueryResult<Vec<String>> {
        reversals::table
            .filter(reversals::seq.is_null())
            .select(reversals::partner_code)
            .distinct()
            .load(conn)
    }

    /// Up to `limit` of a partner's reversals booked on `day` after chain position
    /// `after_seq`, in chain order.
    pub fn booked_page(
        conn: &mut DbConn,
        partner: &str,
        day: NaiveDate,
        after_seq: i64,
        limit: i64,
    ) -> QueryResult<Vec<Reversal>> {
        concrete!(conn, |c| reversals::table
            .filter(reversals::partner_code.eq(partner))
            .filter(reversals::business_date.eq(day))
            .filter(reversals::seq.gt(after_seq))
            .order(reversals::seq.asc())
            .limit(limit)
            .select(Reversal::as_select())
            .load(c))
    }

    pub fn partners_on(conn: &mut DbConn, day: NaiveDate) -> QueryResult<Vec<String>> {
        reversals::table
            .filter(reversals::business_date.eq(day))
            .select(reversals::partner_code)
            .distinct()
            .load(conn)
    }
}
