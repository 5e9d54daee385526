use super::idempotency_keys::{StoredAnswer, StoredResponse};
use super::ledger::{Ledger, Posting};
use super::sale_bookings::Booked;
pub use super::sale_bookings::{ToBook, MAX_BOOK_MANY};
use super::schema::transactions;
use super::{DbConn, DbError};
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

/// What booking a sale writes: its row, the member's ref for this partner when
/// `remember_ref`, its points journal (`postings`, balanced; empty when no points move) and
/// the answer to store under its Idempotency-Key.
#[derive(Debug, Clone)]
pub struct SaleRows {
    pub txn: Transaction,
    pub remember_ref: bool,
    pub postings: Vec<super::ledger::OwnedPosting>,
    pub answer: Option<StoredResponse>,
}

impl SaleRows {
    /// The rows as [`Transaction::book_many`] takes them.
    pub fn to_book(&self) -> ToBook<'_> {
        ToBook {
            txn: &self.txn,
            remember_ref: self.remember_ref,
            postings: self.postings.iter().map(|p| p.as_posting()).collect(),
            answer: self.answer.as_ref(),
        }
    }

    /// Writes the sale alone (see [`Transaction::book`]).
    pub fn book(&self, conn: &mut DbConn) -> Result<(), DbError> {
        let postings: Vec<Posting<'_>> = self.postings.iter().map(|p| p.as_posting()).collect();
        Transaction::book(
            conn,
            &self.txn,
            self.remember_ref,
            &postings,
            self.answer.as_ref(),
        )
    }
}

/// The advisory locks a sale takes before it reads (PostgreSQL; see `db::locks`).
#[derive(Debug, Clone, Copy)]
pub struct SaleLocks {
    /// `locks::BOOKING`, taken shared: a day cannot close under the booking.
    pub booking: i64,
    /// `locks::partner_record`: orders two requests with one partner_txn_id.
    pub record: i64,
}

/// How a sale names its member.
#[derive(Debug, Clone, Copy)]
pub enum MemberKey<'a> {
    Card(&'a str),
    /// A ref this partner was given; another partner's ref names no one.
    Ref(&'a str),
}

/// What a sale needs to know of its member, with the balance read under the member's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleMember {
    pub id: i64,
    pub tier: String,
    pub status: String,
    pub birth_month: Option<i32>,
    pub balance: i64,
}

/// The Idempotency-Key a sale's prelude tries first, when the sale folds its key's lock,
/// lookup and stored answer into its own statements (PostgreSQL; see
/// `transactions::sale::record_once`).
#[derive(Debug, Clone, Copy)]
pub struct AnswerLookup<'a> {
    /// `locks::idempotency` of the key.
    pub lock: i64,
    pub key: &'a str,
    pub now: NaiveDateTime,
}

/// What the prelude found under the Idempotency-Key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// No key was asked about, or no live answer is stored under it: the sale goes on.
    Open,
    /// Another request holds the key's lock; nothing else was locked or read.
    InFlight,
    /// The live answer stored under the key; nothing else was locked or read.
    Stored(StoredAnswer),
}

/// What a sale reads before its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalePrelude {
    pub answered: Answered,
    pub last_closed: Option<NaiveDate>,
    /// The sale already recorded under this partner_txn_id; then nothing else was read.
    pub existing_txn_id: Option<String>,
    /// `None`: no member matches (or not looked up, see `existing_txn_id`).
    pub member: Option<SaleMember>,
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

    /// Everything a sale reads before its checks, with the locks it takes first (see
    /// [`SalePrelude`]). On PostgreSQL one round trip, through `alliance_sale_prelude`
    /// (migration `sale_in_two_statements`), whose reads see everything committed before each
    /// lock ahead of them was granted. SQLite's single writer needs no locks, and a statement
    /// there is a function call, so it reads with plain statements.
    pub fn sale_prelude(
        conn: &mut DbConn,
        locks: SaleLocks,
        partner: &str,
        partner_txn_id: &str,
        member: MemberKey<'_>,
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
        let (card, member_ref) = match member {
            MemberKey::Card(c) => (Some(c), None),
            MemberKey::Ref(r) => (None, Some(r)),
        };
        match conn {
            DbConn::Postgres(pg) => {
                let row = super::prepared::prepared(
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
            DbConn::Sqlite(_) => {
                // SQLite's single writer orders requests under one key: the stored answer is
                // a plain read.
                let answered = match answer {
                    None => Answered::Open,
                    Some(a) => match StoredResponse::find(conn, partner, a.key, a.now)? {
                        None => Answered::Open,
                        Some(r) => {
                            return Ok(SalePrelude {
                                answered: Answered::Stored(StoredAnswer {
                                    request_sha256: r.request_sha256,
                                    response_status: r.response_status,
                                    response_body: r.response_body,
                                }),
                                last_closed: None,
                                existing_txn_id: None,
                                member: None,
                            })
                        }
                    },
                };
                let last_closed = super::business_days::BusinessDays::last_closed(conn)?;
                let existing_txn_id =
                    Self::find_by_partner_txn_id(conn, partner, partner_txn_id)?.map(|t| t.txn_id);
                if existing_txn_id.is_some() {
                    return Ok(SalePrelude {
                        answered,
                        last_closed,
                        existing_txn_id,
                        member: None,
                    });
                }
                let found = match member {
                    MemberKey::Card(card) => super::members::Member::find_by_card(conn, card)?,
                    MemberKey::Ref(r) => {
                        match super::member_refs::MemberRef::member_id(conn, partner, r)? {
                            Some(id) => super::members::Member::find(conn, id)?,
                            None => None,
                        }
                    }
                };
                let member = match found {
                    Some(m) => Some(SaleMember {
                        balance: super::ledger::Ledger::balance(conn, m.id)?,
                        id: m.id,
                        tier: m.tier,
                        status: m.status,
                        birth_month: m.birth_month,
                    }),
                    None => None,
                };
                Ok(SalePrelude {
                    answered,
                    last_closed,
                    existing_txn_id,
                    member,
                })
            }
        }
    }

    /// Writes a sale: the member's ref for this partner when `remember_ref` (idempotent), the
    /// points journal when any points move, the sale's row, and the answer to store under the
    /// Idempotency-Key when given. On PostgreSQL one statement of data-modifying CTEs, where it
    /// was four round trips; on SQLite the statements one by one. `postings` must balance
    /// (checked before anything is written).
    pub fn book(
        conn: &mut DbConn,
        t: &Transaction,
        remember_ref: bool,
        postings: &[Posting<'_>],
        answer: Option<&StoredResponse>,
    ) -> Result<(), DbError> {
        if !postings.is_empty() {
            Ledger::check_balanced("sale", &t.txn_id, postings)?;
        }
        let pg = match conn {
            DbConn::Postgres(pg) => pg,
            DbConn::Sqlite(_) => {
                if remember_ref {
                    super::member_refs::MemberRef::remember(
                        conn,
                        &super::member_refs::NewMemberRef {
                            partner_code: &t.partner_code,
                            member_ref: &t.member_ref,
                            member_id: t.member_id,
                            created_at: t.created_at,
                        },
                    )?;
                }
                if !postings.is_empty() {
                    Ledger::post(conn, "sale", &t.txn_id, postings, t.created_at)?;
                }
                Self::insert(conn, t)?;
                if let Some(answer) = answer {
                    StoredResponse::store(conn, answer)?;
                }
                return Ok(());
            }
        };
        use diesel::sql_types::{Array, BigInt, Bool, Date, Integer, Nullable, Text, Timestamp};
        let accounts: Vec<&str> = postings.iter().map(|p| p.account).collect();
        let members: Vec<Option<i64>> = postings.iter().map(|p| p.member_id).collect();
        let amounts: Vec<i64> = postings.iter().map(|p| p.amount_points).collect();
        // Data-modifying CTEs all run, to completion, whether or not the final SELECT reads
        // them; the journal's CTE writes nothing when no points move (no postings).
        let booked: Booked = super::prepared::prepared(concat!(
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
