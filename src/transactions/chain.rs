//! Each partner's hash chain over its sales and reversals (contract section 8): `seq` counts
//! from 1 per partner; `line_hash` = SHA-256(previous line_hash ‖ RFC 8785 canonical JSON of
//! the record's contract fields), the first chained to 32 zero bytes. Serialised per partner
//! across instances by the partner's chain lock.
//!
//! When a record is linked is the store's to say (`store::chains_linked_at_booking`): in the
//! booking's own transaction ([`link_sale`], [`link_reversal`]) where one writer serialises
//! every booking anyway, or just after the booking commits, by the linker ([`link_all`], an
//! upkeep job every gateway runs), which links whatever is pending in batches. Holding the
//! partner's chain lock from booking to commit made each booking wait for the previous one's
//! commit: one partner's sales went one at a time. Until it is linked a record has no `seq` and
//! no `line_hash`; nothing outside this module reads them before the day closes, and closing
//! links everything first, under the exclusive booking lock.
use crate::db::chain_links::{self, Chained, Link};
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

/// Links a sale being booked (when the store links at booking): takes the chain lock, sets
/// the sale's `seq` and `line_hash` and moves the head. The caller inserts the sale in the same
/// transaction.
pub fn link_sale(conn: &mut DbConn, txn: &mut Transaction) -> Result<(), DbError> {
    let head = lock_head(conn, &txn.partner_code)?;
    txn.seq = Some(head.seq + 1);
    let hash = line_hash(&head.line_hash, &sale_fields(txn))?;
    txn.line_hash = Some(hash.clone());
    advance(conn, &txn.partner_code, head.seq + 1, hash)
}

/// [`link_sale`] for a reversal.
pub fn link_reversal(conn: &mut DbConn, rev: &mut Reversal) -> Result<(), DbError> {
    let head = lock_head(conn, &rev.partner_code)?;
    rev.seq = Some(head.seq + 1);
    let hash = line_hash(&head.line_hash, &reversal_fields(rev))?;
    rev.line_hash = Some(hash.clone());
    advance(conn, &rev.partner_code, head.seq + 1, hash)
}

fn advance(conn: &mut DbConn, partner: &str, seq: i64, line_hash: String) -> Result<(), DbError> {
    ChainHead::advance(
        conn,
        &ChainHead {
            partner_code: partner.to_owned(),
            seq,
            line_hash,
        },
    )?;
    Ok(())
}

/// Records linked per linker transaction: enough to carry a busy partner's backlog in a few
/// commits, few enough that the chain lock is never held for long.
pub const LINK_BATCH: i64 = 1_000;

/// Links up to [`LINK_BATCH`] of the partner's unlinked records, in the caller's transaction:
/// sales first, oldest first, then reversals whose sale is linked. Each kind's links are written
/// in one statement ([`chain_links::write`]). Returns how many it linked.
pub fn link_pending_in(conn: &mut DbConn, partner: &str) -> Result<usize, DbError> {
    let mut head = lock_head(conn, partner)?;
    let mut links = Vec::new();
    for mut t in Transaction::unlinked(conn, partner, LINK_BATCH)? {
        t.seq = Some(head.seq + 1);
        links.push(append(&mut head, t.txn_id.clone(), &sale_fields(&t))?);
    }
    write_all(conn, Chained::Sales, &links)?;
    let mut linked = links.len();
    let room = LINK_BATCH - linked as i64;
    if room > 0 {
        // After the sales: a reversal whose sale this batch just linked is eligible now.
        let mut links = Vec::new();
        for mut r in Reversal::unlinked(conn, partner, room)? {
            r.seq = Some(head.seq + 1);
            links.push(append(
                &mut head,
                r.reversal_id.clone(),
                &reversal_fields(&r),
            )?);
        }
        write_all(conn, Chained::Reversals, &links)?;
        linked += links.len();
    }
    if linked > 0 {
        ChainHead::advance(conn, &head)?;
    }
    Ok(linked)
}

/// Moves the head on by one record (whose `fields` carry the head's next `seq`) and returns the
/// record's link.
fn append(head: &mut ChainHead, id: String, fields: &Value) -> Result<Link, DbError> {
    let hash = line_hash(&head.line_hash, fields)?;
    head.seq += 1;
    head.line_hash = hash.clone();
    Ok(Link {
        id,
        seq: head.seq,
        line_hash: hash,
    })
}

/// Writes the links and checks every record took its own: under the chain lock, a record
/// linked by someone else means the lock did not serialise the linkers.
fn write_all(conn: &mut DbConn, kind: Chained, links: &[Link]) -> Result<(), DbError> {
    let written = chain_links::write(conn, kind, links)?;
    if written != links.len() {
        return Err(DbError::Invariant(format!(
            "{kind:?}: {written} of {} records took their link; the others were linked under \
             the chain lock by someone else",
            links.len()
        )));
    }
    Ok(())
}

/// Links everything pending for every partner, each batch in a transaction of its own (or in
/// the caller's, when it has one open: the close of a day). Idempotent: the background linker,
/// `close` and `verify-chain` all call it. Returns how many records it linked.
pub fn link_all(conn: &mut DbConn) -> Result<usize, DbError> {
    let mut partners = Transaction::partners_unlinked(conn)?;
    partners.extend(Reversal::partners_unlinked(conn)?);
    partners.sort_unstable();
    partners.dedup();
    let mut total = 0;
    for partner in partners {
        // On while batches come back full. A short batch means nothing was left at that
        // moment; going on until one came back empty would let one busy partner starve the
        // others. With the booking lock held (close), nothing new arrives, so a short batch
        // means the partner is fully linked.
        loop {
            let n = write_tx(conn, |c| link_pending_in(c, &partner))?;
            total += n;
            if (n as i64) < LINK_BATCH {
                break;
            }
        }
    }
    Ok(total)
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
    // Only linked records (chain_of): a record still waiting for the linker is not in the
    // chain yet.
    let mut records: Vec<(Option<i64>, Option<String>, Value)> =
        Transaction::chain_of(conn, partner)?
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
        let seq = seq.unwrap_or_default();
        if seq != expected_seq {
            return Ok(ChainCheck::Broken {
                seq,
                reason: format!("expected seq {expected_seq}: a record is missing or duplicated"),
            });
        }
        let computed = line_hash(&prev, fields)?;
        if stored.as_deref() != Some(computed.as_str()) {
            return Ok(ChainCheck::Broken {
                seq,
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
