//! PostgreSQL's SQL for a sale (see `store::bookings`): the prelude is one call of the
//! PL/pgSQL function `alliance_sale_prelude` (migration `sale_in_two_statements`), and a
//! booking one statement of data-modifying CTEs, for one sale or for a batch of them.
/// The columns of `transactions` in the order of [`crate::db::transactions::Transaction`], for the
/// hand-written booking statements (one sale, and several at once): one
/// text, so that the two cannot drift apart. A macro, not a `const`, so that `concat!` keeps
/// each statement a `&'static str` and so prepared (see `prepared`).
macro_rules! transaction_columns {
    () => {
        "txn_id, partner_code, partner_txn_id, member_id, member_ref, store_id, occurred_at, \
         business_date, late, gross_fen, discount_fen, redeem_points, redeem_value_fen, \
         paid_fen, points_earned, points_balance, offer_version, request_digest, seq, \
         line_hash, created_at"
    };
}

/// A booking's stored answer (its Idempotency-Key's row) as the booking statements write it:
/// the conflict clause replaces the in-flight placeholder the key's claim left. Shared as
/// [`transaction_columns!`] is, and for the same reasons.
macro_rules! answer_upsert {
    () => {
        "ON CONFLICT (partner_code, idempotency_key) DO UPDATE SET \
         request_sha256 = excluded.request_sha256, \
         response_status = excluded.response_status, \
         response_body = excluded.response_body, \
         created_at = excluded.created_at, expires_at = excluded.expires_at \
         RETURNING 1"
    };
}

use crate::db::idempotency_keys::{StoredAnswer, StoredResponse};
use crate::db::ledger::Posting;
use crate::db::transactions::Transaction;
use crate::db::DbError;
use crate::store::sale::{AnswerLookup, Answered, SaleLocks, SaleMember, SalePrelude, ToBook};
use chrono::{NaiveDate, NaiveDateTime};
use diesel::pg::PgConnection;
use diesel::prelude::*;

/// What a booking statement wrote: its entries, sale rows and stored answers.
#[derive(QueryableByName)]
struct Booked {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    entries: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    sales: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    answers: i64,
}

/// The sale's prelude in one round trip, whose reads see everything committed before each
/// lock ahead of them was granted.
pub(crate) fn sale_prelude(
    pg: &mut PgConnection,
    locks: SaleLocks,
    partner: &str,
    partner_txn_id: &str,
    (card, member_ref): (Option<&str>, Option<&str>),
    answer: Option<AnswerLookup<'_>>,
) -> QueryResult<SalePrelude> {
    use diesel::sql_types::{BigInt, Bool, Date, Integer, Nullable, Text, Timestamp};
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Bool)]
        answer_locked: bool,
        #[diesel(sql_type = Nullable<Text>)]
        answer_request_sha256: Option<String>,
        #[diesel(sql_type = Nullable<Integer>)]
        answer_status: Option<i32>,
        #[diesel(sql_type = Nullable<Text>)]
        answer_body: Option<String>,
        #[diesel(sql_type = Nullable<Date>)]
        last_closed: Option<NaiveDate>,
        #[diesel(sql_type = Nullable<Text>)]
        existing_txn_id: Option<String>,
        #[diesel(sql_type = Nullable<BigInt>)]
        found_member_id: Option<i64>,
        #[diesel(sql_type = Nullable<Text>)]
        member_tier: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        member_status: Option<String>,
        #[diesel(sql_type = Nullable<Integer>)]
        member_birth_month: Option<i32>,
        #[diesel(sql_type = Nullable<BigInt>)]
        points_balance: Option<i64>,
    }
    let row = crate::db::prepared::prepared(
        "SELECT answer_locked, answer_request_sha256, answer_status, answer_body, \
             last_closed, existing_txn_id, found_member_id, member_tier, \
             member_status, member_birth_month, points_balance \
             FROM alliance_sale_prelude($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind::<Nullable<BigInt>, _>(answer.map(|a| a.lock))
    .bind::<Nullable<Text>, _>(answer.map(|a| a.key))
    .bind::<Nullable<Timestamp>, _>(answer.map(|a| a.now))
    .bind::<BigInt, _>(locks.booking)
    .bind::<BigInt, _>(locks.record)
    .bind::<Text, _>(partner)
    .bind::<Text, _>(partner_txn_id)
    .bind::<Nullable<Text>, _>(card)
    .bind::<Nullable<Text>, _>(member_ref)
    .get_result::<Row>(pg)?;
    let answered = match (
        row.answer_locked,
        row.answer_request_sha256,
        row.answer_status,
        row.answer_body,
    ) {
        (false, ..) => Answered::InFlight,
        (true, Some(request_sha256), Some(response_status), Some(response_body)) => {
            Answered::Stored(StoredAnswer {
                request_sha256,
                response_status,
                response_body,
            })
        }
        _ => Answered::Open,
    };
    let member = match (
        row.found_member_id,
        row.member_tier,
        row.member_status,
        row.points_balance,
    ) {
        (Some(id), Some(tier), Some(status), Some(balance)) => Some(SaleMember {
            id,
            tier,
            status,
            birth_month: row.member_birth_month,
            balance,
        }),
        _ => None,
    };
    Ok(SalePrelude {
        answered,
        last_closed: row.last_closed,
        existing_txn_id: row.existing_txn_id,
        member,
    })
}

/// One sale: the member's ref, the journal, the sale's row and the stored answer in one
/// statement, where it was four round trips.
pub(crate) fn book(pg: &mut PgConnection, sale: &ToBook<'_>) -> Result<(), DbError> {
    let (t, remember_ref, postings, answer) =
        (sale.txn, sale.remember_ref, &sale.postings[..], sale.answer);
    use diesel::sql_types::{Array, BigInt, Bool, Date, Integer, Nullable, Text, Timestamp};
    let accounts: Vec<&str> = postings.iter().map(|p| p.account).collect();
    let members: Vec<Option<i64>> = postings.iter().map(|p| p.member_id).collect();
    let amounts: Vec<i64> = postings.iter().map(|p| p.amount_points).collect();
    // Data-modifying CTEs all run, to completion, whether or not the final SELECT reads
    // them; the journal's CTE writes nothing when no points move (no postings).
    let booked: Booked = crate::db::prepared::prepared(concat!(
        "WITH r AS (INSERT INTO member_refs (partner_code, member_ref, member_id, created_at) \
                    SELECT $2, $5, $4, $21 WHERE $22 ON CONFLICT DO NOTHING), \
         j AS (INSERT INTO ledger_journals (kind, reference, created_at) \
               SELECT 'sale', $1, $21 WHERE cardinality($23::TEXT[]) > 0 RETURNING id), \
         e AS (INSERT INTO ledger_entries (journal_id, account, member_id, amount_points, \
                                           created_at) \
               SELECT j.id, e.account, e.member_id, e.amount_points, $21 \
               FROM j, unnest($23, $24, $25) WITH ORDINALITY \
                    AS e(account, member_id, amount_points, n) \
               ORDER BY e.n RETURNING 1), \
         t AS (INSERT INTO transactions (",
        transaction_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
               $16, $17, $18, $19, $20, $21) RETURNING 1), \
         a AS (INSERT INTO idempotency_keys (partner_code, idempotency_key, request_sha256, \
               response_status, response_body, created_at, expires_at) \
               SELECT $2, $26, $27, $28, $29, $21, $30 WHERE $26 IS NOT NULL \
               ",
        answer_upsert!(),
        ") SELECT (SELECT count(*) FROM e) AS entries, (SELECT count(*) FROM t) AS sales, \
                (SELECT count(*) FROM a) AS answers"
    ))
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
    .bind::<Timestamp, _>(t.created_at)
    .bind::<Bool, _>(remember_ref)
    .bind::<Array<Text>, _>(accounts)
    .bind::<Array<Nullable<BigInt>>, _>(members)
    .bind::<Array<BigInt>, _>(amounts)
    .bind::<Nullable<Text>, _>(answer.map(|a| a.idempotency_key.as_str()))
    .bind::<Nullable<Text>, _>(answer.map(|a| a.request_sha256.as_str()))
    .bind::<Nullable<Integer>, _>(answer.map(|a| a.response_status))
    .bind::<Nullable<Text>, _>(answer.map(|a| a.response_body.as_str()))
    .bind::<Nullable<Timestamp>, _>(answer.map(|a| a.expires_at))
    .get_result(pg)?;
    // Every entry, the sale and the answer were written.
    if usize::try_from(booked.entries).ok() != Some(postings.len())
        || booked.sales != 1
        || booked.answers != i64::from(answer.is_some())
    {
        return Err(DbError::Invariant(format!(
            "sale {}: {} of {} entries, {} sale rows and {} answers written",
            t.txn_id,
            booked.entries,
            postings.len(),
            booked.sales,
            booked.answers
        )));
    }
    Ok(())
}

/// Several sales in one statement of data-modifying CTEs over arrays. Why: on PostgreSQL what
/// a sale costs is mostly per statement and per commit (executor start-up, plan cache, the
/// commit's WAL flush), not per row written; replayed by pgbench, eight sales to a statement
/// booked about twice as many sales a second (`benches/pg-replay`).
pub(crate) fn book_many(pg: &mut PgConnection, sales: &[ToBook<'_>]) -> Result<(), DbError> {
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
    let booked: Booked = crate::db::prepared::prepared(concat!(
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
    .bind::<Array<Nullable<BigInt>>, _>(entries.iter().map(|e| e.1.member_id).collect::<Vec<_>>())
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
