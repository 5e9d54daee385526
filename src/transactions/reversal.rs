//! `POST /v1/transactions/{txn_id}/reversals`: a partial or full refund of a sale. Every column
//! is taken back by the cumulative-floor rule, so the reversals of a sale sum to exactly the
//! sale. Allowed for frozen and closed members; a clawback may take a balance below zero.
use super::arithmetic::{reverse, SaleAmounts};
use super::input::ReversalInput;
use super::sale::{booking_day, lock_balance};
use super::{chain, new_id, post_points, Ctx, PointsMove, TxnError};
use crate::alliance::business_day;
use crate::db::reversals::Reversal;
use crate::db::transactions::Transaction;
use crate::db::{locks, serialise, DbConn};
use serde::{Deserialize, Serialize};

/// The receipt of a reversal (contract section 13): the amounts reversed, as positive numbers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReversalReceipt {
    pub reversal_id: String,
    pub txn_id: String,
    pub partner_reversal_id: String,
    pub business_date: String,
    pub late: bool,
    pub gross_fen: i64,
    pub discount_fen: i64,
    pub redeem_points: i64,
    pub redeem_value_fen: i64,
    pub points_clawed_back: i64,
    pub points_balance: i64,
    pub request_digest: String,
}

impl From<&Reversal> for ReversalReceipt {
    fn from(r: &Reversal) -> Self {
        ReversalReceipt {
            reversal_id: r.reversal_id.clone(),
            txn_id: r.txn_id.clone(),
            partner_reversal_id: r.partner_reversal_id.clone(),
            business_date: r.business_date.to_string(),
            late: r.late,
            gross_fen: r.gross_fen,
            discount_fen: r.discount_fen,
            redeem_points: r.redeem_points,
            redeem_value_fen: r.redeem_value_fen,
            points_clawed_back: r.points_clawed_back,
            points_balance: r.points_balance,
            request_digest: r.request_digest.clone(),
        }
    }
}

/// How the original sale is named: by gateway id (the endpoint) or by the partner's own id
/// (batch items).
pub enum Original<'a> {
    TxnId(&'a str),
    PartnerTxnId(&'a str),
}

/// Records a reversal inside the caller's write transaction.
pub fn record(
    conn: &mut DbConn,
    ctx: &Ctx<'_>,
    original: Original<'_>,
    input: &ReversalInput,
    request_digest: &str,
) -> Result<ReversalReceipt, TxnError> {
    let partner = ctx.partner.as_str();
    let occurred_at = input.occurred_at.unwrap_or(ctx.now);
    // Locks in one order everywhere: booking, record, member, chain.
    let (business_date, late) =
        booking_day(conn, business_day(occurred_at, ctx.settings.timezone))?;
    let txn = match original {
        Original::TxnId(id) if !super::is_gateway_id(id) => None,
        Original::TxnId(id) => Transaction::find(conn, partner, id)?,
        Original::PartnerTxnId(id) => Transaction::find_by_partner_txn_id(conn, partner, id)?,
    }
    .ok_or(TxnError::TransactionNotFound)?;
    if occurred_at.naive_utc() < txn.occurred_at {
        return Err(TxnError::validation(
            "occurred_at",
            "a reversal cannot be dated before its original sale",
        ));
    }
    // Reversals of one sale are ordered by a lock on the sale, so the cumulative sums below
    // hold however many instances reverse it at once.
    serialise(conn, locks::partner_record(partner, &txn.txn_id))?;
    let earlier = Reversal::of(conn, &txn.txn_id)?;
    if let Some(dup) = earlier
        .iter()
        .find(|r| r.partner_reversal_id == input.partner_reversal_id)
    {
        return Err(TxnError::DuplicatePartnerReversalId {
            reversal_id: dup.reversal_id.clone(),
        });
    }
    let reversed_before: i64 = earlier.iter().map(|r| r.gross_fen).sum();
    let remaining = txn.gross_fen - reversed_before;
    if input.gross_fen > remaining {
        return Err(TxnError::ReversalExceedsOriginal {
            remaining_fen: remaining,
        });
    }
    let original_amounts = SaleAmounts {
        gross_fen: txn.gross_fen,
        discount_fen: txn.discount_fen,
        redeem_points: txn.redeem_points,
        redeem_value_fen: txn.redeem_value_fen,
        paid_fen: txn.paid_fen,
        points_earned: txn.points_earned,
    };
    let back = reverse(&original_amounts, reversed_before, input.gross_fen);

    let reversal_id = new_id("rev")?;
    let now = crate::db::micros(ctx.now);
    let balance = lock_balance(conn, txn.member_id)?;
    // Redeemed points go back to the member; earned points are clawed back, whatever the
    // balance (a clawback always succeeds, and may leave it below zero).
    let member_delta = post_points(
        conn,
        "reversal",
        &reversal_id,
        &PointsMove {
            partner,
            member_id: txn.member_id,
            earned: -back.points_clawed_back,
            redeemed: -back.redeem_points,
        },
        now,
    )?;
    let mut rev = Reversal {
        reversal_id,
        txn_id: txn.txn_id.clone(),
        partner_code: partner.to_owned(),
        partner_reversal_id: input.partner_reversal_id.clone(),
        reason: input.reason.clone(),
        occurred_at: occurred_at.naive_utc(),
        business_date,
        late,
        gross_fen: back.gross_fen,
        discount_fen: back.discount_fen,
        redeem_points: back.redeem_points,
        redeem_value_fen: back.redeem_value_fen,
        points_clawed_back: back.points_clawed_back,
        points_balance: balance + member_delta,
        request_digest: request_digest.to_owned(),
        seq: None,
        line_hash: None,
        created_at: now,
    };
    if crate::store::chains_linked_at_booking(conn) {
        // Last, so that the chain lock is held only for the insert and the commit.
        chain::link_reversal(conn, &mut rev)?;
    }
    Reversal::insert(conn, &rev)?;
    Ok(ReversalReceipt::from(&rev))
}
