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
    pub fn insert(conn: &mut DbConn, r: &Reversal) -> QueryResult<()> {
        diesel::insert_into(reversals::table)
            .values(r)
            .execute(conn)
            .map(|_| ())
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
