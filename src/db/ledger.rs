//! The double-entry points ledger. Entries are append-only (triggers refuse UPDATE and
//! DELETE); a member's balance is the sum of its entries, never a column to overwrite.
use super::schema::ledger_entries;
use super::{DbConn, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// Accounts that are not a member's: where points come from and go to.
pub mod accounts {
    pub const MEMBER: &str = "member";
    /// The alliance's liability for balances members brought with them at import.
    pub const OPENING_BALANCES: &str = "alliance:opening-balances";
}

#[derive(Debug, Clone)]
pub struct Posting<'a> {
    pub account: &'a str,
    pub member_id: Option<i64>,
    pub amount_points: i64,
}

/// A [`Posting`] that owns its account's name, for a booking handed between threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedPosting {
    pub account: String,
    pub member_id: Option<i64>,
    pub amount_points: i64,
}

impl OwnedPosting {
    pub fn as_posting(&self) -> Posting<'_> {
        Posting {
            account: &self.account,
            member_id: self.member_id,
            amount_points: self.amount_points,
        }
    }
}

impl From<&Posting<'_>> for OwnedPosting {
    fn from(p: &Posting<'_>) -> Self {
        OwnedPosting {
            account: p.account.to_owned(),
            member_id: p.member_id,
            amount_points: p.amount_points,
        }
    }
}

pub struct Ledger;

/// [`Ledger::post`] on PostgreSQL: the journal and its entries in one statement (a
/// data-modifying CTE), one round trip where the journal's id used to need a round trip of its
/// own before the entries could name it.
fn post_in_one_statement(
    pg: &mut diesel::PgConnection,
    kind: &str,
    reference: &str,
    postings: &[Posting<'_>],
    now: NaiveDateTime,
) -> Result<i64, DbError> {
    use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamp};
    #[derive(QueryableByName)]
    struct Posted {
        #[diesel(sql_type = BigInt)]
        journal_id: i64,
    }
    let accounts: Vec<&str> = postings.iter().map(|p| p.account).collect();
    let members: Vec<Option<i64>> = postings.iter().map(|p| p.member_id).collect();
    let amounts: Vec<i64> = postings.iter().map(|p| p.amount_points).collect();
    let posted: Vec<Posted> = super::prepared::prepared(
        "WITH j AS (INSERT INTO ledger_journals (kind, reference, created_at) \
                    VALUES ($1, $2, $3) RETURNING id) \
         INSERT INTO ledger_entries (journal_id, account, member_id, amount_points, created_at) \
         SELECT j.id, e.account, e.member_id, e.amount_points, $3 \
         FROM j, unnest($4, $5, $6) WITH ORDINALITY AS e(account, member_id, amount_points, n) \
         ORDER BY e.n \
         RETURNING journal_id",
    )
    .bind::<Text, _>(kind)
    .bind::<Text, _>(reference)
    .bind::<Timestamp, _>(now)
    .bind::<Array<Text>, _>(accounts)
    .bind::<Array<Nullable<BigInt>>, _>(members)
    .bind::<Array<BigInt>, _>(amounts)
    .load(pg)?;
    // Every entry was written, all under the one journal.
    match posted.first() {
        Some(first)
            if posted.len() == postings.len()
                && posted.iter().all(|p| p.journal_id == first.journal_id) =>
        {
            Ok(first.journal_id)
        }
        _ => Err(DbError::Invariant(format!(
            "journal {kind}/{reference}: {} of {} entries written",
            posted.len(),
            postings.len()
        ))),
    }
}

impl Ledger {
    /// Posts one balanced journal. Refuses (before writing) a journal that does not sum to zero.
    /// `(kind, reference)` is unique, so a journal is posted at most once.
    pub fn post(
        conn: &mut DbConn,
        kind: &str,
        reference: &str,
        postings: &[Posting<'_>],
        now: NaiveDateTime,
    ) -> Result<i64, DbError> {
        Self::check_balanced(kind, reference, postings)?;
        if let DbConn::Postgres(pg) = conn {
            return post_in_one_statement(pg, kind, reference, postings, now);
        }
        // SQLite: a statement is a function call, not a round trip, so one prepared insert per
        // row costs less than one multi-row insert that would be parsed on every call.
        use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
        #[derive(QueryableByName)]
        struct Journal {
            #[diesel(sql_type = BigInt)]
            id: i64,
        }
        let journal = super::prepared::prepared(
            "INSERT INTO ledger_journals (kind, reference, created_at) VALUES ($1, $2, $3) \
             RETURNING id",
        )
        .bind::<Text, _>(kind)
        .bind::<Text, _>(reference)
        .bind::<Timestamp, _>(now);
        let journal_id = concrete!(conn, |c| journal.get_result::<Journal>(c))?.id;
        for p in postings {
            let entry = super::prepared::prepared(
                "INSERT INTO ledger_entries (journal_id, account, member_id, amount_points, \
                 created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind::<BigInt, _>(journal_id)
            .bind::<Text, _>(p.account)
            .bind::<Nullable<BigInt>, _>(p.member_id)
            .bind::<BigInt, _>(p.amount_points)
            .bind::<Timestamp, _>(now);
            concrete!(conn, |c| entry.execute(c))?;
        }
        Ok(journal_id)
    }

    /// Refuses a journal that does not sum to zero or has fewer than two entries: checked before
    /// anything is written.
    pub fn check_balanced(
        kind: &str,
        reference: &str,
        postings: &[Posting<'_>],
    ) -> Result<(), DbError> {
        let sum = postings
            .iter()
            .try_fold(0i64, |acc, p| acc.checked_add(p.amount_points));
        if sum != Some(0) || postings.len() < 2 {
            return Err(DbError::Invariant(format!(
                "journal {kind}/{reference} does not balance"
            )));
        }
        Ok(())
    }

    /// A member's balance: the sum of the member's entries.
    pub fn balance(conn: &mut DbConn, member_id: i64) -> QueryResult<i64> {
        concrete!(conn, |c| ledger_entries::table
            .filter(ledger_entries::member_id.eq(member_id))
            .select(SumPoints)
            .first(c))
    }

    /// Takes the member's balance lock (`lock_key`, PostgreSQL) and then reads the balance: one
    /// round trip, through `alliance_lock_balance` (migration `lock_then_read`), whose read sees
    /// everything the lock's previous holder committed. SQLite's single writer needs no lock.
    pub fn lock_and_balance(conn: &mut DbConn, lock_key: i64, member_id: i64) -> QueryResult<i64> {
        #[derive(QueryableByName)]
        struct Balance {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            balance: i64,
        }
        match conn {
            DbConn::Postgres(pg) => {
                super::prepared::prepared("SELECT alliance_lock_balance($1, $2) AS balance")
                    .bind::<diesel::sql_types::BigInt, _>(lock_key)
                    .bind::<diesel::sql_types::BigInt, _>(member_id)
                    .get_result::<Balance>(pg)
                    .map(|b| b.balance)
            }
            DbConn::Sqlite(_) => Self::balance(conn, member_id),
        }
    }

    /// The sum of every entry in the ledger; zero unless the ledger is corrupt.
    pub fn total(conn: &mut DbConn) -> QueryResult<i64> {
        concrete!(conn, |c| ledger_entries::table.select(SumPoints).first(c))
    }
}

/// The sum of `ledger_entries.amount_points`, zero over no rows. `SUM(BIGINT)` is NUMERIC on
/// PostgreSQL; casting keeps it an integer on both backends. A type of its own rather than a
/// `sql()` literal because diesel never caches a literal's prepared statement: a balance read
/// was re-parsed by SQLite on every verify.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
struct SumPoints;

impl diesel::Expression for SumPoints {
    type SqlType = diesel::sql_types::BigInt;
}

impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for SumPoints {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql("CAST(COALESCE(SUM(ledger_entries.amount_points), 0) AS BIGINT)");
        Ok(())
    }
}

impl diesel::expression::ValidGrouping<()> for SumPoints {
    type IsAggregate = diesel::expression::is_aggregate::Yes;
}

impl diesel::AppearsOnTable<ledger_entries::table> for SumPoints {}

impl diesel::SelectableExpression<ledger_entries::table> for SumPoints {}
