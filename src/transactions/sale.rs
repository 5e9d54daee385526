//! `POST /v1/transactions`: one sale, judged, computed, booked and chained in one transaction.
use super::arithmetic::{judge_sale, SaleRefusal};
use super::idempotency::{self, Answer, Key};
use super::input::{MemberName, Sale};
use super::{
    chain, issued_account, new_id, postings, redeemed_account, tokens, Ctx, PointsMove, TxnError,
};
use crate::alliance::business_day;
use crate::db::business_days::BusinessDays;
use crate::db::idempotency_keys::{StoredAnswer, StoredResponse};
use crate::db::ledger::{Ledger, OwnedPosting};
use crate::db::transactions::Transaction;
use crate::db::{in_transaction, locks, serialise_shared, write_tx, DbConn, DbError};
use crate::domain::terms::BPS_ONE;
use crate::domain::{MemberStatus, Tier};
use crate::registry::Offer;
use crate::store::bookings::{self, AnswerLookup, Answered, MemberKey, SaleLocks, SaleRows};
use chrono::{Datelike, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// The receipt of a sale (contract section 5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Receipt {
    pub txn_id: String,
    pub partner_txn_id: String,
    pub member_ref: String,
    pub business_date: String,
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
}

impl From<&Transaction> for Receipt {
    fn from(t: &Transaction) -> Self {
        Receipt {
            txn_id: t.txn_id.clone(),
            partner_txn_id: t.partner_txn_id.clone(),
            member_ref: t.member_ref.clone(),
            business_date: t.business_date.to_string(),
            late: t.late,
            gross_fen: t.gross_fen,
            discount_fen: t.discount_fen,
            redeem_points: t.redeem_points,
            redeem_value_fen: t.redeem_value_fen,
            paid_fen: t.paid_fen,
            points_earned: t.points_earned,
            points_balance: t.points_balance,
            offer_version: t.offer_version,
            request_digest: t.request_digest.clone(),
        }
    }
}

/// The business day a record of local date `date` is booked into: its own, or the earliest
/// open day when its own is closed (then `late`). Call inside the booking transaction, holding
/// the shared booking lock, so a day cannot close in between.
pub fn booking_day(conn: &mut DbConn, date: NaiveDate) -> Result<(NaiveDate, bool), DbError> {
    serialise_shared(conn, locks::BOOKING)?;
    booked_into(conn, date)
}

/// [`booking_day`] for a caller that already holds the shared booking lock.
fn booked_into(conn: &mut DbConn, date: NaiveDate) -> Result<(NaiveDate, bool), DbError> {
    day_after_closed(BusinessDays::last_closed(conn)?, date)
}

/// The day a record of local date `date` is booked into, given the last closed day.
fn day_after_closed(
    last_closed: Option<NaiveDate>,
    date: NaiveDate,
) -> Result<(NaiveDate, bool), DbError> {
    match last_closed {
        Some(closed) if date <= closed => {
            let next = closed
                .succ_opt()
                .ok_or_else(|| DbError::Invariant("no day after the last closed one".into()))?;
            Ok((next, true))
        }
        _ => Ok((date, false)),
    }
}

/// Locks a member's balance for this transaction and reads it.
pub fn lock_balance(conn: &mut DbConn, member_id: i64) -> Result<i64, DbError> {
    Ok(Ledger::lock_and_balance(
        conn,
        locks::member(member_id),
        member_id,
    )?)
}

/// The offer version in force on `date`, with its terms (from the registry cache).
pub fn offer_on(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    date: NaiveDate,
) -> Result<std::sync::Arc<Offer>, TxnError> {
    ctx.registry
        .offer_in_force(conn, ctx.partner.as_str(), date)?
        .ok_or_else(|| {
            TxnError::OfferRuleViolation(format!("no offer version is in force on {date}"))
        })
}

/// Records a sale. Runs inside the caller's write transaction (see `idempotency::once`);
/// returns the receipt. Checks in the contract's order: member found, member active, token
/// (when redeeming), discount, redemption share, balance.
pub fn record(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    sale: &Sale,
    request_digest: &str,
) -> Result<Receipt, TxnError> {
    match record_in(conn, ctx, sale, request_digest, None)? {
        Recorded::Booked { receipt, .. } => Ok(receipt),
        Recorded::Stored(_) => {
            Err(DbError::Invariant("a stored answer nobody asked for".into()).into())
        }
    }
}

/// Records a sale once per Idempotency-Key (contract sections 5 and 13), with the same
/// outcomes as [`idempotency::once`] around [`record`], the key's lock, lookup and stored
/// answer folded into the sale's own two steps, its prelude and its booking
/// (`store::bookings`). Inside an open transaction
/// (the store's) it runs in it; else in one of its own.
pub fn record_once(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    sale: &Sale,
    request_digest: &str,
    key: &Key<'_>,
    now: NaiveDateTime,
) -> Result<Answer, TxnError> {
    let folded =
        |conn: &mut DbConn| match record_in(conn, ctx, sale, request_digest, Some((key, now)))? {
            Recorded::Stored(stored) => idempotency::replay(key, stored),
            Recorded::Booked { body, .. } => Ok(Answer {
                status: 201,
                body,
                replayed: false,
            }),
        };
    if in_transaction(conn) {
        return folded(conn);
    }
    write_tx(conn, folded)
}

/// What [`record_in`] did.
enum Recorded {
    /// The sale was booked; `body` is the receipt's JSON, stored under the key when one was
    /// folded in.
    Booked { receipt: Receipt, body: String },
    /// The answer stored under the folded-in key; nothing was booked.
    Stored(StoredAnswer),
}

/// [`record`], and with `fold` the Idempotency-Key's lock, lookup and stored answer too (see
/// [`record_once`]).
fn record_in(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    sale: &Sale,
    request_digest: &str,
    fold: Option<(&Key<'_>, NaiveDateTime)>,
) -> Result<Recorded, TxnError> {
    match prepare_in(conn, ctx, sale, request_digest, fold)? {
        Prepared::Stored(stored) => Ok(Recorded::Stored(stored)),
        Prepared::Booking(b) => {
            bookings::book_rows(conn, &b.rows)?;
            Ok(Recorded::Booked {
                receipt: b.receipt,
                body: b.body,
            })
        }
    }
}

/// A sale judged under its locks, ready to be written.
pub struct Booking {
    /// What booking it writes.
    pub rows: SaleRows,
    pub receipt: Receipt,
    /// The receipt's JSON, as answered and stored.
    pub body: String,
}

/// What [`prepare_in`] found.
pub enum Prepared {
    /// The answer stored under the folded-in key; nothing is to be booked.
    Stored(StoredAnswer),
    /// The sale, judged and ready to write.
    Booking(Box<Booking>),
}

/// Everything of [`record_in`] but the sale's own writes: the locks, the reads and the
/// judgement. Two things are written here all the same: a redemption's member token is
/// consumed, and where the store links at booking the sale takes its place in the chain (after
/// every check). A refusal after the token's consumption rolls back with the request's
/// transaction, so the caller must not commit what a refused sale did (which is why only sales
/// that redeem nothing are `SaleJob::batchable`).
pub fn prepare_in(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    sale: &Sale,
    request_digest: &str,
    fold: Option<(&Key<'_>, NaiveDateTime)>,
) -> Result<Prepared, TxnError> {
    let partner = ctx.partner.as_str();
    let local = sale.occurred_at.with_timezone(&ctx.settings.timezone);
    let local_date = local.date_naive();
    // The shared booking lock (a day cannot close under this booking), then the lock on the
    // partner_txn_id: two requests with one partner_txn_id (under different keys) are ordered
    // by it, so the check below and the insert cannot interleave across instances. After the
    // locks: the last closed day, the duplicate check, the member, the member's balance lock
    // and the balance, all in one round trip (see `store::bookings::sale_prelude`).
    let key = match &sale.member {
        MemberName::Card(card) => MemberKey::Card(card.as_str()),
        MemberName::Ref(r) => MemberKey::Ref(r),
    };
    let answer = fold.map(|(k, now)| AnswerLookup {
        lock: locks::idempotency(partner, k.key),
        key: k.key,
        now,
    });
    let prelude = bookings::sale_prelude(
        conn,
        SaleLocks {
            booking: locks::BOOKING,
            record: locks::partner_record(partner, &sale.partner_txn_id),
        },
        partner,
        &sale.partner_txn_id,
        key,
        answer,
    )?;
    match prelude.answered {
        Answered::Open => {}
        Answered::Stored(stored) => return Ok(Prepared::Stored(stored)),
        // Another request holds the key: nothing was locked; the caller tries again.
        Answered::InFlight => return Err(TxnError::IdempotencyKeyInFlight),
    }
    let (business_date, late) = day_after_closed(
        prelude.last_closed,
        business_day(sale.occurred_at, ctx.settings.timezone),
    )?;
    if let Some(txn_id) = prelude.existing_txn_id {
        return Err(TxnError::DuplicatePartnerTxnId { txn_id });
    }
    let member = prelude.member.ok_or(TxnError::MemberNotFound)?;
    let member_ref = ctx.keys.member_ref(partner, member.id);
    let status = MemberStatus::parse(&member.status)
        .map_err(|e| DbError::Invariant(format!("member {}: {e}", member.id)))?;
    if status != MemberStatus::Active {
        return Err(TxnError::MemberInactive(status.as_str().to_owned()));
    }
    let tier = Tier::parse(&member.tier)
        .map_err(|e| DbError::Invariant(format!("member {}: {e}", member.id)))?;
    let in_force = offer_on(conn, ctx, local_date)?;
    let (version, offer) = (&in_force.version, &in_force.terms.offer);

    let txn_id = new_id("txn")?;
    let now = crate::db::micros(ctx.now);
    if sale.redeem_points > 0 && offer.redeem.enabled && offer.redeem.requires_member_token {
        match &sale.member_token {
            None => {
                return Err(TxnError::MemberAuthenticationRequired(
                    "a redemption needs the member_token from the member's app".into(),
                ))
            }
            Some(token) => {
                if !tokens::consume(conn, member.id, token, &txn_id, now)? {
                    return Err(TxnError::MemberAuthenticationRequired(
                        "the member_token is not valid for this member (expired, used or unknown)"
                            .into(),
                    ));
                }
            }
        }
    }

    let day_bps = offer.day_bps(local.day());
    let birth_bps = if member.birth_month == i32::try_from(local.month()).ok() {
        offer.birthday_month_multiplier_bps
    } else {
        BPS_ONE
    };
    let amounts = judge_sale(
        offer,
        tier,
        day_bps,
        birth_bps,
        sale.gross_fen,
        sale.discount_fen,
        sale.redeem_points,
    )
    .map_err(|r| match r {
        SaleRefusal::Overflow => TxnError::validation("gross_fen", r.to_string()),
        other => TxnError::OfferRuleViolation(other.to_string()),
    })?;

    // Read under the member's lock, held since the prelude.
    let balance = member.balance;
    // A negative balance (after a clawback) blocks redemption until it is covered.
    if amounts.redeem_points > 0 && balance < amounts.redeem_points {
        return Err(TxnError::InsufficientPoints {
            balance,
            asked: amounts.redeem_points,
        });
    }
    let balance_after = balance - amounts.redeem_points + amounts.points_earned;
    // Invariant: a sale never takes a balance below zero (only a clawback may).
    if amounts.redeem_points > 0 && balance_after < 0 {
        return Err(
            DbError::Invariant(format!("sale {txn_id} would make a balance negative")).into(),
        );
    }

    let mut txn = Transaction {
        txn_id: txn_id.clone(),
        partner_code: partner.to_owned(),
        partner_txn_id: sale.partner_txn_id.clone(),
        member_id: member.id,
        member_ref,
        store_id: sale.store_id.clone(),
        occurred_at: sale.occurred_at.naive_utc(),
        business_date,
        late,
        gross_fen: amounts.gross_fen,
        discount_fen: amounts.discount_fen,
        redeem_points: amounts.redeem_points,
        redeem_value_fen: amounts.redeem_value_fen,
        paid_fen: amounts.paid_fen,
        points_earned: amounts.points_earned,
        points_balance: balance_after,
        offer_version: version.version,
        request_digest: request_digest.to_owned(),
        seq: None,
        line_hash: None,
        created_at: now,
    };
    if crate::store::chains_linked_at_booking(conn) {
        // Just before the writes, so that the chain lock is held only for them and the commit.
        chain::link_sale(conn, &mut txn)?;
    }
    // A partner that named the member by card is given the ref from now on: remember it.
    let remember_ref = matches!(sale.member, MemberName::Card(_));
    let receipt = Receipt::from(&txn);
    let body = super::to_json(&receipt)?;
    let stored = fold.map(|(k, now)| StoredResponse {
        partner_code: k.partner.to_owned(),
        idempotency_key: k.key.to_owned(),
        request_sha256: k.request_sha256.to_owned(),
        response_status: 201,
        response_body: body.clone(),
        created_at: now,
        expires_at: now + k.retention,
    });
    let (issued, redeemed) = (issued_account(partner), redeemed_account(partner));
    let postings = postings(
        &PointsMove {
            partner,
            member_id: txn.member_id,
            earned: amounts.points_earned,
            redeemed: amounts.redeem_points,
        },
        &issued,
        &redeemed,
    )
    .iter()
    .map(OwnedPosting::from)
    .collect();
    Ok(Prepared::Booking(Box::new(Booking {
        rows: SaleRows {
            txn,
            remember_ref,
            postings,
            answer: stored,
        },
        receipt,
        body,
    })))
}
