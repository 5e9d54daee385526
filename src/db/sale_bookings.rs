//! Several sales written by one statement: [`Transaction::book_many`], for the PostgreSQL sale
//! batches (`store::postgres::sale_batch`), beside the one-sale `Transaction::book`.
use super::idempotency_keys::StoredResponse;
use super::ledger::{Ledger, Posting};
use super::transactions::Transaction;
use super::{DbConn, DbError};
use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

/// What a booking statement wrote: its entries, sale rows and stored answers.
#[derive(QueryableByName)]
pub(super) struct Booked {
    #[diesel(sql_type = BigInt)]
    pub entries: i64,
    #[diesel(sql_type = BigInt)]
    pub sales: i64,
    #[diesel(sql_type = BigInt)]
    pub answers: i64,
}

impl Transaction {
    /// Writes several sales at once (a PostgreSQL batch, see `store::postgres::sale_batch`): for
    /// each, what [`Transaction::book`] writes, all in one statement of data-modifying CTEs
    /// over arrays. Why: on PostgreSQL what a sale costs is mostly per statement and per
    /// commit (executor start-up, plan cache, the commit's WAL flush), not per row written;
    /// replayed by pgbench, eight sales to a statement booked about twice as many sales a
    /// second (`benches/pg-replay`). The sales must not share a member, a partner_txn_id or an
    /// Idempotency-Key (a stored answer's upsert cannot touch one row twice). On SQLite,
    /// one [`Transaction::book`] after another.
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
        let pg = match conn {
            DbConn::Postgres(pg) => pg,
            DbConn::Sqlite(_) => {
                for s in sales {
                    Self::book(conn, s.txn, s.remember_ref, &s.postings, s.answer)?;
                }
                return Ok(());
            }
        };
        use diesel::sql_types::{Array, BigInt, Bool, Date, Integer, Nullable, Text, Timestamp};
        let t = |f: fn(&Transaction) -> &str| sales.iter().map(|s| f(s.txn)).collect::<Vec<_>>();
        let n = |f: fn(&Transaction) -> i64| sales.iter().map(|s| f(s.txn)).collect::<Vec<_>>();
        let refs: Vec<&ToBook<'_>> = sales.iter().filter(|s| s.remember_ref).collect();
        let journaled: Vec<&ToBook<'_>> = sales.iter().filter(|s| !s.postings.is_empty()).collect();
        let entries: Vec<(&str, &Posting<'_>, NaiveDateTime)> = journaled
            .iter()
            .flat_map(|s| {
                s.postings
                    .iter()
                    .map(move |p| (s.txn.txn_id.as_str(), p, s.txn.created_at))
            })
            .collect();
        let answers: Vec<&StoredResponse> = sales.iter().filter_map(|s| s.answer).collect();
        // One array per column of the stored answers, as `t` and `n` are for the sales.
        let a = |f: fn(&StoredResponse) -> &str| answers.iter().map(|x| f(x)).collect::<Vec<_>>();
        let booked: Booked = super::prepared::prepared(concat!(
            "WITH t AS (INSERT INTO transactions (",
            transaction_columns!(),
            ") SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], \
                   $5::TEXT[], $6::TEXT[], $7::TIMESTAMP[], $8::DATE[], $9::BOOLEAN[], \
                   $10::BIGINT[], $11::BIGINT[], $12::BIGINT[], $13::BIGINT[], $14::BIGINT[], \
                   $15::BIGINT[], $16::BIGINT[], $17::BIGINT[], $18::TEXT[], $19::BIGINT[], \
                   $20::TEXT[], $21::TIMESTAMP[]) RETURNING 1), \
             r AS (INSERT INTO member_refs (partner_code, member_ref, member_id, created_at) \
                   SELECT * FROM unnest($22::TEXT[], $23::TEXT[], $24::BIGINT[], \
                   $25::TIMESTAMP[]) ON CONFLICT DO NOTHING), \
             j AS (INSERT INTO ledger_journals (kind, reference, created_at) \
                   SELECT 'sale', x.reference, x.created_at \
                   FROM unnest($26::TEXT[], $27::TIMESTAMP[]) AS x(reference, created_at) \
                   RETURNING id, reference), \
             e AS (INSERT INTO ledger_entries (journal_id, account, member_id, amount_points, \
                                               created_at) \
                   SELECT j.id, x.account, x.member_id, x.amount_points, x.created_at \
                   FROM unnest($28::TEXT[], $29::TEXT[], $30::BIGINT[], $31::BIGINT[], \
                        $32::TIMESTAMP[]) WITH ORDINALITY \
                        AS x(reference, account, member_id, amount_points, created_at, n) \
                   JOIN j ON j.reference = x.reference \
                   ORDER BY x.n RETURNING 1), \
             a AS (INSERT INTO idempotency_keys (partner_code, idempotency_key, request_sha256, \
                   response_status, response_body, created_at, expires_at) \
                   SELECT * FROM unnest($33::TEXT[], $34::TEXT[], $35::TEXT[], $36::INTEGER[], \
                   $37::TEXT[], $38::TIMESTAMP[], $39::TIMESTAMP[]) \
                   ",
            answer_upsert!(),
            ") SELECT (SELECT count(*) FROM e) AS entries, (SELECT count(*) FROM t) AS sales, \
                    (SELECT count(*) FROM a) AS answers"
        ))
        .bind::<Array<Text>, _>(t(|x| &x.txn_id))
        .bind::<Array<Text>, _>(t(|x| &x.partner_code))
        .bind::<Array<Text>, _>(t(|x| &x.partner_txn_id))
        .bind::<Array<BigInt>, _>(n(|x| x.member_id))
        .bind::<Array<Text>, _>(t(|x| &x.member_ref))
        .bind::<Array<Text>, _>(t(|x| &x.store_id))
        .bind::<Array<Timestamp>, _>(sales.iter().map(|s| s.txn.occurred_at).collect::<Vec<_>>())
        .bind::<Array<Date>, _>(
            sales
                .iter()
                .map(|s| s.txn.business_date)
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Bool>, _>(sales.iter().map(|s| s.txn.late).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(n(|x| x.gross_fen))
        .bind::<Array<BigInt>, _>(n(|x| x.discount_fen))
        .bind::<Array<BigInt>, _>(n(|x| x.redeem_points))
        .bind::<Array<BigInt>, _>(n(|x| x.redeem_value_fen))
        .bind::<Array<BigInt>, _>(n(|x| x.paid_fen))
        .bind::<Array<BigInt>, _>(n(|x| x.points_earned))
        .bind::<Array<BigInt>, _>(n(|x| x.points_balance))
        .bind::<Array<BigInt>, _>(n(|x| x.offer_version))
        .bind::<Array<Text>, _>(t(|x| &x.request_digest))
        .bind::<Array<Nullable<BigInt>>, _>(sales.iter().map(|s| s.txn.seq).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(
            sales
                .iter()
                .map(|s| s.txn.line_hash.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Timestamp>, _>(sales.iter().map(|s| s.txn.created_at).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(
            refs.iter()
                .map(|s| s.txn.partner_code.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(
            refs.iter()
                .map(|s| s.txn.member_ref.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<BigInt>, _>(refs.iter().map(|s| s.txn.member_id).collect::<Vec<_>>())
        .bind::<Array<Timestamp>, _>(refs.iter().map(|s| s.txn.created_at).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(
            journaled
                .iter()
                .map(|s| s.txn.txn_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Timestamp>, _>(
            journaled
                .iter()
                .map(|s| s.txn.created_at)
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(entries.iter().map(|e| e.0).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(entries.iter().map(|e| e.1.account).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(
            entries.iter().map(|e| e.1.member_id).collect::<Vec<_>>(),
        )
        .bind::<Array<BigInt>, _>(
            entries
                .iter()
                .map(|e| e.1.amount_points)
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Timestamp>, _>(entries.iter().map(|e| e.2).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(a(|x| &x.partner_code))
        .bind::<Array<Text>, _>(a(|x| &x.idempotency_key))
        .bind::<Array<Text>, _>(a(|x| &x.request_sha256))
        .bind::<Array<Integer>, _>(
            answers
                .iter()
                .map(|x| x.response_status)
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(a(|x| &x.response_body))
        .bind::<Array<Timestamp>, _>(answers.iter().map(|a| a.created_at).collect::<Vec<_>>())
        .bind::<Array<Timestamp>, _>(answers.iter().map(|a| a.expires_at).collect::<Vec<_>>())
        .get_result(pg)?;
        // Every entry, sale and answer was written.
        if usize::try_from(booked.entries).ok() != Some(entries.len())
            || usize::try_from(booked.sales).ok() != Some(sales.len())
            || usize::try_from(booked.answers).ok() != Some(answers.len())
        {
            return Err(DbError::Invariant(format!(
                "a booking of {} sales wrote {} of {} entries, {} sale rows and {} of {} answers",
                sales.len(),
                booked.entries,
                entries.len(),
                booked.sales,
                booked.answers,
                answers.len()
            )));
        }
        Ok(())
    }
}

/// Sales per [`Transaction::book_many`] statement, at most.
pub const MAX_BOOK_MANY: usize = 64;

/// One sale of [`Transaction::book_many`]: what [`Transaction::book`] takes.
pub struct ToBook<'a> {
    pub txn: &'a Transaction,
    pub remember_ref: bool,
    pub postings: Vec<Posting<'a>>,
    pub answer: Option<&'a StoredResponse>,
}
