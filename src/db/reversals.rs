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
    /// Set once by the chain linker; None until the record is linked.
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

    /// The reversals of one sale, oldest first.
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

    /// A partner's records not linked into its chain yet, oldest first.
    pub fn unchained(conn: &mut DbConn, partner: &str, limit: i64) -> QueryResult<Vec<Reversal>> {
        reversals::table
            .filter(reversals::partner_code.eq(partner))
            .filter(reversals::seq.is_null())
            .order((reversals::created_at.asc(), reversals::reversal_id.asc()))
            .limit(limit)
            .select(Reversal::as_select())
            .load(conn)
    }

    /// Partners with records waiting to be linked.
    pub fn partners_with_unchained(conn: &mut DbConn) -> QueryResult<Vec<String>> {
        reversals::table
            .filter(reversals::seq.is_null())
            .select(reversals::partner_code)
            .distinct()
            .load(conn)
    }

    /// Links the record: the only update the table allows, once.
    pub fn link(conn: &mut DbConn, id: &str, seq: i64, line_hash: &str) -> QueryResult<()> {
        let n = diesel::update(reversals::table.find(id).filter(reversals::seq.is_null()))
            .set((
                reversals::seq.eq(Some(seq)),
                reversals::line_hash.eq(Some(line_hash)),
            ))
            .execute(conn)?;
        if n == 1 {
            Ok(())
        } else {
            Err(diesel::result::Error::NotFound)
        }
    }
}
