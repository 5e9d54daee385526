//! Each partner's hash chain over its sales and reversals (contract section 8): `seq` counts
//! from 1 per partner; `line_hash` = SHA-256(previous line_hash ‖ RFC 8785 canonical JSON of
//! the record's contract fields), the first chained to 32 zero bytes. Serialised per partner
//! across instances by the partner's chain lock.
use crate::db::partner_chains::{ChainHead, GENESIS};
use crate::db::reversals::Reversal;
use crate::db::transactions::Transaction;
use crate::db::{locks, serialise, DbConn, DbError};
use serde_json::{json, Value};

fn time(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The fields of a sale that its line hash covers.
pub fn sale_fields(t: &Transaction) -> Value {
    json!({
        "kind": "sale",
        "seq": t.seq,
        "txn_id": t.txn_id,
        "partner_code": t.partner_code,
        "partner_txn_id": t.partner_txn_id,
        "member_ref": t.member_ref,
        "store_id": t.store_id,
        "occurred_at": time(t.occurred_at),
        "business_date": t.business_date.to_string(),
        "late": t.late,
        "gross_fen": t.gross_fen,
        "discount_fen": t.discount_fen,
        "redeem_points": t.redeem_points,
        "redeem_value_fen": t.redeem_value_fen,
        "paid_fen": t.paid_fen,
        "points_earned": t.points_earned,
        "offer_version": t.offer_version,
        "request_digest": t.request_digest,
    })
}

/// The fields of a reversal that its line hash covers.
pub fn reversal_fields(r: &Reversal) -> Value {
    json!({
        "kind": "reversal",
        "seq": r.seq,
        "reversal_id": r.reversal_id,
        "txn_id": r.txn_id,
        "partner_code": r.partner_code,
        "partner_reversal_id": r.partner_reversal_id,
        "occurred_at": time(r.occurred_at),
        "business_date": r.business_date.to_string(),
        "late": r.late,
        "gross_fen": r.gross_fen,
        "discount_fen": r.discount_fen,
        "redeem_points": r.redeem_points,
        "redeem_value_fen": r.redeem_value_fen,
        "points_clawed_back": r.points_clawed_back,
        "request_digest": r.request_digest,
    })
}

/// SHA-256(prev ‖ JCS(fields)) in lowercase hex.
pub fn line_hash(prev_hex: &str, fields: &Value) -> Result<String, DbError> {
    let prev = hex::decode(prev_hex)
        .map_err(|_| DbError::Invariant(format!("chain hash {prev_hex:?} is not hex")))?;
    let canonical = serde_json_canonicalizer::to_vec(fields)
        .map_err(|e| DbError::Invariant(format!("canonical JSON: {e}")))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&prev);
    ctx.update(&canonical);
    Ok(hex::encode(ctx.finish()))
}

/// Takes the partner's chain lock and returns its head; the caller appends one record and
/// calls [`ChainHead::advance`] in the same transaction.
pub fn lock_head(conn: &mut DbConn, partner: &str) -> Result<ChainHead, DbError> {
    serialise(conn, locks::partner_chain(partner))?;
    Ok(ChainHead::current(conn, partner)?)
}

/// What `verify-chain` found.
#[derive(Debug, PartialEq, Eq)]
pub enum ChainCheck {
    Intact {
        records: i64,
        head: String,
    },
    /// The first record (by seq) whose position or hash does not match.
    Broken {
        seq: i64,
        reason: String,
    },
}

/// Re-computes a partner's chain from its stored sales and reversals.
pub fn verify(conn: &mut DbConn, partner: &str) -> Result<ChainCheck, DbError> {
    let mut records: Vec<(i64, String, Value)> = Transaction::chain_of(conn, partner)?
        .iter()
        .map(|t| (t.seq, t.line_hash.clone(), sale_fields(t)))
        .collect();
    records.extend(
        Reversal::chain_of(conn, partner)?
            .iter()
            .map(|r| (r.seq, r.line_hash.clone(), reversal_fields(r))),
    );
    records.sort_by_key(|(seq, _, _)| *seq);
    let mut prev = GENESIS.to_owned();
    for (i, (seq, stored, fields)) in records.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if *seq != expected_seq {
            return Ok(ChainCheck::Broken {
                seq: *seq,
                reason: format!("expected seq {expected_seq}: a record is missing or duplicated"),
            });
        }
        let computed = line_hash(&prev, fields)?;
        if &computed != stored {
            return Ok(ChainCheck::Broken {
                seq: *seq,
                reason: "the stored line_hash does not match the record".into(),
            });
        }
        prev = computed;
    }
    let head = ChainHead::current(conn, partner)?;
    if head.seq != records.len() as i64 || head.line_hash != prev {
        return Ok(ChainCheck::Broken {
            seq: head.seq,
            reason: "the recorded chain head does not match the records".into(),
        });
    }
    Ok(ChainCheck::Intact {
        records: records.len() as i64,
        head: prev,
    })
}
