//! A sale's statements, whatever the backend: its prelude ([`sale_prelude`], the locks and
//! every read before its checks) and its booking ([`book`], every row it writes; [`book_many`]
//! for a batch). The SQL of each backend is in `sqlite/bookings.rs` and `postgres/bookings.rs`.
use crate::db::ledger::Ledger;
use crate::db::{DbConn, DbError};
use diesel::QueryResult;

pub use super::sale::{
    AnswerLookup, Answered, MemberKey, SaleLocks, SaleMember, SalePrelude, SaleRows, ToBook,
    MAX_BOOK_MANY,
};

/// Everything a sale reads before its checks, with the locks it takes first (see
/// [`SalePrelude`]).
pub fn sale_prelude(
    conn: &mut DbConn,
    locks: SaleLocks,
    partner: &str,
    partner_txn_id: &str,
    member: MemberKey<'_>,
    answer: Option<AnswerLookup<'_>>,
) -> QueryResult<SalePrelude> {
    match conn {
        DbConn::Postgres(pg) => {
            let named = match member {
                MemberKey::Card(c) => (Some(c), None),
                MemberKey::Ref(r) => (None, Some(r)),
            };
            super::postgres::bookings::sale_prelude(
                pg,
                locks,
                partner,
                partner_txn_id,
                named,
                answer,
            )
        }
        DbConn::Sqlite(_) => {
            super::sqlite::bookings::sale_prelude(conn, partner, partner_txn_id, member, answer)
        }
    }
}

/// Writes a sale: the member's ref for this partner when `remember_ref` (idempotent), the
/// points journal when any points move, the sale's row, and the answer to store under the
/// Idempotency-Key when given. `postings` must balance (checked before anything is written).
pub fn book(conn: &mut DbConn, sale: &ToBook<'_>) -> Result<(), DbError> {
    if !sale.postings.is_empty() {
        Ledger::check_balanced("sale", &sale.txn.txn_id, &sale.postings)?;
    }
    match conn {
        DbConn::Postgres(pg) => super::postgres::bookings::book(pg, sale),
        DbConn::Sqlite(_) => super::sqlite::bookings::book(conn, sale),
    }
}

/// Writes a sale's rows alone ([`book`]).
pub fn book_rows(conn: &mut DbConn, rows: &SaleRows) -> Result<(), DbError> {
    book(conn, &rows.to_book())
}

/// Writes several sales at once (a batch, see `postgres::sale_batch`): for each, what [`book`]
/// writes. The sales must not share a member, a partner_txn_id or an Idempotency-Key (a stored
/// answer's upsert cannot touch one row twice).
pub fn book_many(conn: &mut DbConn, sales: &[ToBook<'_>]) -> Result<(), DbError> {
    for s in sales {
        if !s.postings.is_empty() {
            Ledger::check_balanced("sale", &s.txn.txn_id, &s.postings)?;
        }
    }
    if sales.len() > MAX_BOOK_MANY {
        return Err(DbError::Invariant(format!(
            "{} sales in one booking; at most {MAX_BOOK_MANY}",
            sales.len()
        )));
    }
    match conn {
        DbConn::Postgres(pg) => super::postgres::bookings::book_many(pg, sales),
        DbConn::Sqlite(_) => {
            for s in sales {
                book(conn, s)?;
            }
            Ok(())
        }
    }
}
