//! Each partner's hash chain over its sales and reversals (contract section 8): `seq` counts
//! from 1 per partner; `line_hash` = SHA-256(previous line_hash ‖ RFC 8785 canonical JSON of
//! the record's contract fields), the first chained to 32 zero bytes.
//!
//! Records are linked after they commit, not while they are booked: [`link_pending`] takes the
//! partner's chain lock (serialised across instances), links every record not linked yet in
//! the order they were created, and moves the head, in one transaction. Every `serve` instance
//! runs it about once a second, and anything that needs a complete chain (`verify-chain`,
//! closing a day) runs it first. So a partner's bookings commit in parallel instead of
//! queueing on one lock, and a chain still has exactly one order.
use crate::db::partner_chains::{ChainHead, GENESIS};
use crate::db::reversals::Reversal;
use crate::db::transactions::Transaction;
use crate::db::{locks, serialise, write_tx, DbConn, DbError};
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

/// Takes the partner's chain lock and returns its head.
fn lock_head(conn: &mut DbConn, partner: &str) -> Result<ChainHead, DbError> {
    serialise(conn, locks::partner_chain(partner))?;
    Ok(ChainHead::current(conn, partner)?)
}

/// The most records one linking transaction takes, so it stays short.
pub const LINK_BATCH: i64 = 5_000;

enum Pending {
    Sale(Transaction),
    Reversal(Reversal),
}

impl Pending {
    fn created(&self) -> (chrono::NaiveDateTime, &str) {
        match self {
            Pending::Sale(t) => (t.created_at, &t.txn_id),
            Pending::Reversal(r) => (r.created_at, &r.reversal_id),
        }
    }
}

/// Links a partner's unlinked records into its chain, oldest first; returns how many.
pub fn link_pending(conn: &mut DbConn, partner: &str) -> Result<usize, DbError> {
    let mut total = 0;
    loop {
        let linked = write_tx(conn, |conn| -> Result<usize, DbError> {
            let mut head = lock_head(conn, partner)?;
            let mut pending: Vec<Pending> = Transaction::unchained(conn, partner, LINK_BATCH)?
                .into_iter()
                .map(Pending::Sale)
                .chain(
                    Reversal::unchained(conn, partner, LINK_BATCH)?
                        .into_iter()
                        .map(Pending::Reversal),
                )
                .collect();
            // A reversal is created after its sale committed, so this order never puts a
            // reversal before its sale.
            pending.sort_by(|a, b| a.created().cmp(&b.created()));
            pending.truncate(LINK_BATCH as usize);
            for record in &mut pending {
                let seq = head.seq + 1;
                let hash = match record {
                    Pending::Sale(t) => {
                        t.seq = Some(seq);
                        let h = line_hash(&head.line_hash, &sale_fields(t))?;
                        Transaction::link(conn, &t.txn_id, seq, &h)?;
                        h
                    }
                    Pending::Reversal(r) => {
                        r.seq = Some(seq);
                        let h = line_hash(&head.line_hash, &reversal_fields(r))?;
                        Reversal::link(conn, &r.reversal_id, seq, &h)?;
                        h
                    }
                };
                head = ChainHead {
                    partner_code: partner.to_owned(),
                    seq,
                    line_hash: hash,
                };
            }
            if !pending.is_empty() {
                ChainHead::advance(conn, &head)?;
            }
            Ok(pending.len())
        })?;
        total += linked;
        if linked < LINK_BATCH as usize {
            return Ok(total);
        }
    }
}

/// Links every partner's pending records; returns how many.
pub fn link_all(conn: &mut DbConn) -> Result<usize, DbError> {
    let mut partners = Transaction::partners_with_unchained(conn)?;
    partners.extend(Reversal::partners_with_unchained(conn)?);
    partners.sort();
    partners.dedup();
    let mut total = 0;
    for p in partners {
        total += link_pending(conn, &p)?;
    }
    Ok(total)
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
        .map(|t| {
            let seq = t.seq.unwrap_or_default();
            (seq, t.line_hash.clone().unwrap_or_default(), sale_fields(t))
        })
        .collect();
    records.extend(Reversal::chain_of(conn, partner)?.iter().map(|r| {
        let seq = r.seq.unwrap_or_default();
        (
            seq,
            r.line_hash.clone().unwrap_or_default(),
            reversal_fields(r),
        )
    }));
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
